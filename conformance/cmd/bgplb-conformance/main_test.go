package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/bgplb/bgplb/conformance/suite"
)

// The tests run this test binary as bgplb-conformance itself: with
// BGPLB_CONFORMANCE_RUN_MAIN=1 TestMain is the command's main.
func TestMain(m *testing.M) {
	if os.Getenv("BGPLB_CONFORMANCE_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// command runs bgplb-conformance with args and returns its exit code and output.
func command(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "BGPLB_CONFORMANCE_RUN_MAIN=1")
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run bgplb-conformance: %v", err)
	}
	return code, string(out)
}

// fakeCluster is a kube-apiserver stand-in that knows three nodes and nothing else,
// enough for the suite to start; it returns a kubeconfig for it.
func fakeCluster(t *testing.T) string {
	t.Helper()
	nodes := `{"kind":"NodeList","apiVersion":"v1","items":[`
	for i := 1; i <= 3; i++ {
		if i > 1 {
			nodes += ","
		}
		nodes += fmt.Sprintf(`{"metadata":{"name":"node%d"},"status":{"addresses":[{"type":"InternalIP","address":"198.18.0.%d"}]}}`, i, 10+i)
	}
	nodes += `]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/v1/nodes":
			fmt.Fprint(w, nodes)
		case "/version":
			_ = json.NewEncoder(w).Encode(map[string]string{"gitVersion": "v1.36.3-fixture"})
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`)
		}
	}))
	t.Cleanup(srv.Close)
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	conf := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: fixture, cluster: {server: %q}}]
users: [{name: fixture, user: {}}]
contexts: [{name: fixture, context: {cluster: fixture, user: fixture}}]
current-context: fixture
`, srv.URL)
	if err := os.WriteFile(kc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return kc
}

// fakeVtysh puts a vtysh on a PATH that answers like an FRR peering with the three
// nodes and holding no routes, and
// returns the --router-exec prefix that finds it.
func fakeVtysh(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	// Settled sessions with the three nodes (established an hour before now).
	nbs := `{`
	for i := 1; i <= 3; i++ {
		if i > 1 {
			nbs += ","
		}
		nbs += fmt.Sprintf(`"198.18.0.%d":{"remoteAs":64513,"bgpState":"Established","bgpTimerUpEstablishedEpoch":%d}`, 10+i, time.Now().Add(-time.Hour).Unix())
	}
	nbs += `}`
	script := `#!/bin/sh
case "$*" in
*"show version"*) echo "FRRouting 8.4.4 (fixture)" ;;
*"show bgp neighbors json"*) echo '` + nbs + `' ;;
*) echo '{}' ;;
esac
`
	if err := os.WriteFile(filepath.Join(dir, "vtysh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return "env PATH=" + dir + ":/usr/bin:/bin"
}

// TestWrongRouterExec: a --router-exec that cannot reach the router stops the run
// before any test with a message naming the flag, the command and its error.
func TestWrongRouterExec(t *testing.T) {
	code, out := command(t, "--kubeconfig", fakeCluster(t), "--router", "frr",
		"--router-exec", "ip netns exec bgplb-conformance-no-such-router")
	if code == 0 {
		t.Fatalf("exit code 0 with a wrong --router-exec; output:\n%s", out)
	}
	for _, want := range []string{
		`the router adapter (--router frr --router-exec "ip netns exec bgplb-conformance-no-such-router") cannot read the router's BGP sessions`,
		`ip netns exec bgplb-conformance-no-such-router vtysh -c show bgp neighbors json`,
		`bgplb-conformance-no-such-router`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "=== RUN   TestConformance/") {
		t.Errorf("tests ran despite the broken router:\n%s", out)
	}
}

// TestNoClientMarksDatapathPartial: without --client-exec every LB-DATAPATH test is
// skipped with the reason and the profile is "partial", never "success".
func TestNoClientMarksDatapathPartial(t *testing.T) {
	report := filepath.Join(t.TempDir(), "report.yaml")
	code, out := command(t, "--kubeconfig", fakeCluster(t), "--router", "frr", "--router-exec", fakeVtysh(t),
		"--profiles", "LB-DATAPATH", "--report", report)
	if code != 0 {
		t.Fatalf("exit code %d; output:\n%s", code, out)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("no report: %v; output:\n%s", err, out)
	}
	var rep suite.Report
	if err := yaml.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Profiles) != 1 || rep.Profiles[0].Name != "LB-DATAPATH" {
		t.Fatalf("profiles %+v, want LB-DATAPATH only", rep.Profiles)
	}
	p := rep.Profiles[0]
	if p.Result != "partial" {
		t.Errorf("LB-DATAPATH result %q, want partial", p.Result)
	}
	if p.Core.Passed != 0 || p.Core.Failed != 0 || p.Core.Skipped == 0 || p.Extended.Passed != 0 {
		t.Errorf("tallies core %+v extended %+v: want only skipped tests", p.Core, p.Extended)
	}
	if len(p.Skipped) != p.Core.Skipped+p.Extended.Skipped {
		t.Errorf("%d skip reasons for %d skipped tests", len(p.Skipped), p.Core.Skipped+p.Extended.Skipped)
	}
	for _, s := range p.Skipped {
		if !strings.Contains(s.Reason, "no Client adapter") || !strings.Contains(s.Reason, "--client-exec") {
			t.Errorf("%s skipped for %q, want the missing client adapter and its flag", s.Test, s.Reason)
		}
	}
	if rep.Environment.Router != "FRRouting 8.4.4 (fixture)" || rep.Environment.Kubernetes != "v1.36.3-fixture" {
		t.Errorf("environment %+v: want the router's and API server's own versions", rep.Environment)
	}
}
