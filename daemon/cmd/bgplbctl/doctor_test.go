package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bgplb/bgplb/daemon/clusterview"
)

func TestCheckCNIChained(t *testing.T) {
	for _, tc := range []struct {
		name, conf string
		ok         bool
		msg        string
	}{
		{"chained", `{"name":"k8s","plugins":[{"type":"ptp"},{"type":"bgplb"}]}`, true, "after ptp"},
		{"missing", `{"name":"k8s","plugins":[{"type":"ptp"}]}`, false, "has no bgplb"},
		{"first", `{"name":"k8s","plugins":[{"type":"bgplb"},{"type":"ptp"}]}`, false, "must come after"},
		{"broken", `{`, false, "10-k8s.conflist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "10-k8s.conflist"), []byte(tc.conf), 0o600); err != nil {
				t.Fatal(err)
			}
			// A later file must not be looked at: the runtime uses the first one.
			if err := os.WriteFile(filepath.Join(dir, "99-other.conflist"), []byte(`{"plugins":[{"type":"x"},{"type":"bgplb"}]}`), 0o600); err != nil {
				t.Fatal(err)
			}
			c := checkCNIChained(dir)
			if (c.severity == sevOK) != tc.ok || !strings.Contains(c.msg, tc.msg) {
				t.Fatalf("check = %+v, want ok=%v containing %q", c, tc.ok, tc.msg)
			}
		})
	}
	if c := checkCNIChained(t.TempDir()); c.severity == sevOK {
		t.Fatal("empty dir passed")
	}
}

// TestDoctorExitCodes: the node doctor exits 0 when every check passed, 1 with warnings
// only and 2 with a failure, and prints the same report as JSON.
func TestDoctorExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		checks []check
		code   int
	}{
		{"ok", []check{{"a", sevOK, "fine"}}, 0},
		{"warnings", []check{{"a", sevOK, "fine"}, {"b", sevWarn, "some sessions down"}}, 1},
		{"failure", []check{{"a", sevWarn, "w"}, {"b", sevFail, "socket gone"}}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			err := printChecks(&out, clusterview.Printer{Format: clusterview.FormatJSON}, tc.checks)
			if got := clusterview.ExitCode(err); got != tc.code {
				t.Fatalf("exit code %d, want %d (err %v)", got, tc.code, err)
			}
			var r clusterview.Report
			if err := json.Unmarshal([]byte(out.String()), &r); err != nil {
				t.Fatalf("report is not JSON: %v\n%s", err, out.String())
			}
			if len(r.Checks) != len(tc.checks) || r.Checks[len(r.Checks)-1].Severity != tc.checks[len(tc.checks)-1].severity {
				t.Fatalf("report %+v does not hold the checks %+v", r, tc.checks)
			}
		})
	}
}
