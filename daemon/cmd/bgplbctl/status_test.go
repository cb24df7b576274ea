package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bgplb/bgplb/daemon/clusterview"
)

// TestStatusJSONWhenNothingAnswers: `status -o json` on a node whose daemon, API server
// and pins are unreachable still prints a NodeStatus naming each failure, and exits 1.
func TestStatusJSONWhenNothingAnswers(t *testing.T) {
	dir := t.TempDir()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"status", "-o", "json", "--node-name", "n1", "--socket", filepath.Join(dir, "none.sock"),
		"--bpf-pin-dir", filepath.Join(dir, "pins"), "--kubeconfig", filepath.Join(dir, "no-kubeconfig")})
	err := root.Execute()
	if clusterview.ExitCode(err) != clusterview.ExitError {
		t.Fatalf("exit code %d (err %v), want 1", clusterview.ExitCode(err), err)
	}
	var st NodeStatus
	if err := json.Unmarshal(out.Bytes(), &st); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out.String())
	}
	if st.Kind != "NodeStatus" || st.Node != "n1" || len(st.Errors) != 3 ||
		!strings.HasPrefix(st.Errors[0], "BGPNodeState") || !strings.HasPrefix(st.Errors[1], "routes") || !strings.HasPrefix(st.Errors[2], "endpoints") {
		t.Errorf("status -o json = %+v", st)
	}
}
