package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
			if c.ok != tc.ok || !strings.Contains(c.msg, tc.msg) {
				t.Fatalf("check = %+v, want ok=%v containing %q", c, tc.ok, tc.msg)
			}
		})
	}
	if c := checkCNIChained(t.TempDir()); c.ok {
		t.Fatal("empty dir passed")
	}
}
