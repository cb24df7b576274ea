package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"k8s.io/component-base/featuregate"

	"github.com/bgplb/bgplb/daemon/features"
)

// TestMain runs main when the test binary is re-executed as bgplbd by runDaemon.
func TestMain(m *testing.M) {
	if os.Getenv("BGPLBD_TEST_RUN_MAIN") == "1" {
		os.Args = append([]string{"bgplbd"}, strings.Fields(os.Getenv("BGPLBD_TEST_ARGS"))...)
		main()
		return
	}
	os.Exit(m.Run())
}

// runDaemon runs bgplbd (this test binary re-executed) with args and returns its exit
// code and output.
func runDaemon(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "BGPLBD_TEST_RUN_MAIN=1", "BGPLBD_TEST_ARGS="+strings.Join(args, " "), "KUBECONFIG=", "NODE_NAME=n1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run bgplbd: %v", err)
	}
	return code, out.String()
}

// TestJSONLogging: with --logging-format=json every log line bgplbd writes is a JSON
// object with component-base's fields (here: the failure to find a kubeconfig).
func TestJSONLogging(t *testing.T) {
	code, out := runDaemon(t, "--logging-format=json", "--kubeconfig=/nonexistent/kubeconfig", "--node-name=n1")
	if code == 0 {
		t.Fatalf("bgplbd with a missing kubeconfig exited 0:\n%s", out)
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	lines := 0
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		lines++
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q: %v\nall output:\n%s", line, err, out)
		}
		for _, f := range []string{"ts", "msg"} {
			if _, ok := rec[f]; !ok {
				t.Errorf("log line %q has no %q field", line, f)
			}
		}
	}
	if lines == 0 {
		t.Fatal("bgplbd wrote no log line")
	}
	if !strings.Contains(out, `"msg":"command failed"`) || !strings.Contains(out, "/nonexistent/kubeconfig") {
		t.Errorf("the failure is not logged as JSON:\n%s", out)
	}
}

// TestFeatureGatesFlag: --feature-gates accepts bgplb's own gate and the logging gates
// the help text mentions, and refuses unknown ones.
func TestFeatureGatesFlag(t *testing.T) {
	code, out := runDaemon(t, "--feature-gates=NoSuchGate=true")
	if code == 0 || !strings.Contains(out, "unrecognized feature gate: NoSuchGate") {
		t.Fatalf("unknown gate: exit %d, want a refusal:\n%s", code, out)
	}

	cmd := newCommand()
	fs := cmd.Flags()
	if err := fs.Parse([]string{"--feature-gates=AnnouncementEvents=false,LoggingAlphaOptions=true"}); err != nil {
		t.Fatalf("parse --feature-gates: %v", err)
	}
	t.Cleanup(func() { _ = features.Gate.Set("AnnouncementEvents=true,LoggingAlphaOptions=false") })
	if features.Gate.Enabled(features.AnnouncementEvents) {
		t.Error("AnnouncementEvents still enabled after --feature-gates=AnnouncementEvents=false")
	}

	// Every feature gate the help text tells the user to enable is one the flag knows.
	var help bytes.Buffer
	cmd.SetOut(&help)
	_ = cmd.Usage() // writes to the buffer
	known := features.New().GetAll()
	for _, m := range regexp.MustCompile(`Enable the (\w+) feature gate`).FindAllStringSubmatch(help.String(), -1) {
		if _, ok := known[featuregate.Feature(m[1])]; !ok {
			t.Errorf("--help mentions feature gate %s, which --feature-gates does not accept", m[1])
		}
	}
	if !strings.Contains(help.String(), "AnnouncementEvents=true|false (BETA - default=true)") {
		t.Errorf("--help does not list AnnouncementEvents:\n%s", help.String())
	}
}
