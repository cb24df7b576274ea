//go:build bench

package bench

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/bgplb/bgplb/conformance/lab"
	"github.com/bgplb/bgplb/conformance/labsuite"
	"github.com/bgplb/bgplb/conformance/suite"
)

var (
	resultsPath = flag.String("bench.results", "RESULTS.md", "Markdown file the result tables are appended to")
	labDirFlag  = flag.String("bench.lab-dir", "/run/bgplb-lab-bench", "lab state directory")
)

// benchLab brings up a fresh 3-node lab with bgplbd and the base BGP configuration
// and tears it down when the test ends.
func benchLab(t *testing.T) (*lab.Lab, *suite.Suite) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the lab needs root")
	}
	bin, k8s := os.Getenv("BGPLB_BIN_DIR"), os.Getenv("BGPLB_K8S_BIN_DIR")
	if bin == "" || k8s == "" {
		t.Fatal("set BGPLB_BIN_DIR and BGPLB_K8S_BIN_DIR; `make bench` does")
	}
	if _, err := os.Stat(filepath.Join(bin, "bgplbd")); err != nil {
		t.Fatalf("the benchmarks need bgplbd: %v", err)
	}
	ctx := context.Background()
	l, err := lab.Up(ctx, lab.Options{Dir: *labDirFlag, Nodes: 3, BinDir: bin, K8sBinDir: k8s, Recreate: true, Logf: t.Logf})
	if err != nil {
		t.Fatalf("bring up the lab: %v", err)
	}
	t.Cleanup(func() {
		if err := lab.Down(l.Dir); err != nil {
			t.Errorf("tear down the lab: %v", err)
		}
	})
	s, err := labsuite.New(l)
	if err != nil {
		t.Fatal(err)
	}
	if err := labsuite.ApplyBase(ctx, s.LB); err != nil {
		t.Fatal(err)
	}
	return l, s
}
