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
	// The lab dir derives from the lab prefix ($BGPLB_LAB_PREFIX) like the lab's other
	// machine-wide names, so suites of two prefixes do not share (and recreate) it.
	labDirFlag = flag.String("conformance.lab-dir", "/run/"+lab.Prefix+"-lab-conformance", "lab state directory")
	keepLab    = flag.Bool("conformance.keep-lab", false, "leave the lab running after the suite")
	ipv6       = flag.Bool("conformance.ipv6", false, "run a dual-stack lab (IPv4 and IPv6), which the IPv6 and DualStack tests need")
)

func TestConformance(t *testing.T) {
	ctx := context.Background()
	// The nodes announce their pod CIDRs (bgplbd --export-pod-cidr): the router holds
	// no static routes, so every pod-IP flow of the suite follows BGP routes (C14).
	l, s := labsuite.Start(t, *labDirFlag, *keepLab, func(o *lab.Options) {
		o.ExportPodCIDR = true
		o.IPv6 = *ipv6
	})
	s.Timeouts.Converge = *converge

	results := suite.Run(t, s, tests.ConformanceTests, testing.Short())

	setup := "bgplb-lab, 3 nodes, kube-proxy nftables, pod CIDRs over BGP"
	if *ipv6 {
		setup += ", dual-stack"
	}
	if l.Opts.Runtime == lab.RuntimeContainerd {
		setup += ", containerd + kubelet nodes, bgplb installed from manifests/base and its image"
	}
	env := suite.Environment{Kubernetes: "v1.36.3 (lab)", Router: s.Router.Name(ctx), Kernel: kernel(), Setup: setup}
	rep := suite.BuildReport(suite.Implementation{Name: "bgplb", Version: version(os.Getenv("BGPLB_BIN_DIR"))}, s.Mode, env, s.SupportedFeatures, results)
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
