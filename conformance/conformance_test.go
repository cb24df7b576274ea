//go:build lab

// The conformance suite against the one-machine lab: `make conformance` (or `make
// test`) brings up a 3-node lab with bgplbd on every node, configures one pool, one
// peer (the lab's FRR) and one advertisement, runs every registered test and writes
// the report YAML.
package conformance_test

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bgplb/bgplb/conformance/lab"
	"github.com/bgplb/bgplb/conformance/labsuite"
	"github.com/bgplb/bgplb/conformance/suite"
	"github.com/bgplb/bgplb/conformance/tests"
)

var (
	reportPath = flag.String("conformance.report", "", "write the report YAML here (default _output/conformance-report.yaml at the repository root)")
	converge   = flag.Duration("conformance.converge", suite.DefaultTimeouts.Converge, "how long a change may take to show at the router (T)")
	labDirFlag = flag.String("conformance.lab-dir", "/run/bgplb-lab-conformance", "lab state directory")
	keepLab    = flag.Bool("conformance.keep-lab", false, "leave the lab running after the suite")
)

func TestConformance(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the lab needs root")
	}
	bin, k8s := os.Getenv("BGPLB_BIN_DIR"), os.Getenv("BGPLB_K8S_BIN_DIR")
	if bin == "" || k8s == "" {
		t.Fatal("set BGPLB_BIN_DIR and BGPLB_K8S_BIN_DIR; `make conformance` does")
	}
	if _, err := os.Stat(filepath.Join(bin, "bgplbd")); err != nil {
		t.Fatalf("the suite needs bgplbd: %v", err)
	}
	ctx := context.Background()
	l, err := lab.Up(ctx, lab.Options{Dir: *labDirFlag, Nodes: 3, BinDir: bin, K8sBinDir: k8s, Recreate: true, Logf: t.Logf})
	if err != nil {
		t.Fatalf("bring up the lab: %v", err)
	}
	if !*keepLab {
		t.Cleanup(func() {
			if err := lab.Down(l.Dir); err != nil {
				t.Errorf("tear down the lab: %v", err)
			}
		})
	}
	s, err := labsuite.New(l)
	if err != nil {
		t.Fatal(err)
	}
	s.Timeouts.Converge = *converge
	if err := labsuite.ApplyBase(ctx, s.LB); err != nil {
		t.Fatal(err)
	}
	s.WaitSessions(t)

	results := suite.Run(t, s, tests.ConformanceTests, testing.Short())

	env := suite.Environment{Kubernetes: "v1.36.3 (lab)", Router: s.Router.Name(ctx), Kernel: kernel(), Setup: "bgplb-lab, 3 nodes, kube-proxy nftables"}
	rep := suite.BuildReport(suite.Implementation{Name: "bgplb", Version: version(bin)}, s.Mode, env, s.SupportedFeatures, results)
	path := *reportPath
	if path == "" {
		path = filepath.Join("..", "_output", "conformance-report.yaml")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := rep.Write(path); err != nil {
		t.Fatal(err)
	}
	t.Logf("conformance report written to %s", path)
}

func kernel() string {
	out, err := exec.Command("uname", "-r").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func version(bin string) string {
	out, err := exec.Command(filepath.Join(bin, "bgplbd"), "--version").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}
