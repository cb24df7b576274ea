package labsuite

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/bgplb/bgplb/conformance/lab"
	"github.com/bgplb/bgplb/conformance/suite"
)

// Start brings up a fresh 3-node lab in dir with bgplbd, applies the base BGP
// configuration and waits for settled sessions; the lab is torn down when the test
// ends unless keep is set. mutate, when not nil, changes the lab options first. The
// project binaries come from $BGPLB_BIN_DIR and the Kubernetes ones from
// $BGPLB_K8S_BIN_DIR (the Makefile sets both); missing ones fail the test.
func Start(t *testing.T, dir string, keep bool, mutate func(*lab.Options)) (*lab.Lab, *suite.Suite) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the lab needs root")
	}
	bin, k8s := os.Getenv("BGPLB_BIN_DIR"), os.Getenv("BGPLB_K8S_BIN_DIR")
	if bin == "" || k8s == "" {
		t.Fatal("set BGPLB_BIN_DIR and BGPLB_K8S_BIN_DIR; the Makefile does")
	}
	if _, err := os.Stat(filepath.Join(bin, "bgplbd")); err != nil {
		t.Fatalf("the lab needs bgplbd: %v", err)
	}
	ctx := context.Background()
	opts := lab.Options{Dir: dir, Nodes: 3, BinDir: bin, K8sBinDir: k8s, Recreate: true, Logf: t.Logf}
	if mutate != nil {
		mutate(&opts)
	}
	l, err := lab.Up(ctx, opts)
	if err != nil {
		t.Fatalf("bring up the lab: %v", err)
	}
	if !keep {
		t.Cleanup(func() {
			if err := lab.Down(l.Dir); err != nil {
				t.Errorf("tear down the lab: %v", err)
			}
		})
	}
	s, err := New(l)
	if err != nil {
		t.Fatal(err)
	}
	if err := ApplyBase(ctx, s.LB); err != nil {
		t.Fatal(err)
	}
	if opts.IPv6 {
		if err := ApplyDualStack(ctx, s.LB); err != nil {
			t.Fatal(err)
		}
	}
	s.WaitSessions(t)
	return l, s
}
