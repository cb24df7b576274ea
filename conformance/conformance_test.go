//go:build lab

// The conformance suite against the one-machine lab: `make conformance` (or `make
// test`) brings up a 3-node lab with bgplbd on every node, configures one pool, one
// peer (the lab's router) and one advertisement, and runs bgplb-conformance's entry
// point (package runner) against it as against any cluster: the kubeconfig, the
// router's CLI and the client through `ip netns exec` prefixes, plus the lab's fault
// adapters. The report goes to -conformance.report.
package conformance_test

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bgplb/bgplb/conformance/lab"
	"github.com/bgplb/bgplb/conformance/labsuite"
	"github.com/bgplb/bgplb/conformance/runner"
	"github.com/bgplb/bgplb/conformance/suite"
)

var (
	reportPath = flag.String("conformance.report", "", "write the report YAML here (default _output/conformance-report.yaml at the repository root)")
	converge   = flag.Duration("conformance.converge", suite.DefaultTimeouts.Converge, "how long a change may take to show at the router (T)")
	// The lab dir derives from the lab prefix ($BGPLB_LAB_PREFIX) like the lab's other
	// machine-wide names, so suites of two prefixes do not share (and recreate) it.
	labDirFlag = flag.String("conformance.lab-dir", "/run/"+lab.Prefix+"-lab-conformance", "lab state directory")
	keepLab    = flag.Bool("conformance.keep-lab", false, "leave the lab running after the suite")
	ipv6       = flag.Bool("conformance.ipv6", false, "run a dual-stack lab (IPv4 and IPv6), which the IPv6 and DualStack tests need")
	profiles   = flag.String("conformance.profiles", "", "comma-separated profiles to run (default: all)")
	skipTests  = flag.String("conformance.skip-tests", "", "comma-separated tests to leave out")
)

func TestConformance(t *testing.T) {
	// The nodes announce their pod CIDRs (bgplbd --export-pod-cidr): the router holds
	// no static routes, so every pod-IP flow of the suite follows BGP routes (C14).
	l, ls := labsuite.Start(t, *labDirFlag, *keepLab, func(o *lab.Options) {
		o.ExportPodCIDR = true
		o.IPv6 = *ipv6
	})

	cfg := labsuite.RunnerConfig(l)
	cfg.Converge = *converge
	cfg.Profiles = split(*profiles)
	cfg.SkipTests = split(*skipTests)
	cfg.ImplementationVersion = version(os.Getenv("BGPLB_BIN_DIR"))
	cfg.KubernetesVersion = "v1.36.3 (lab)"
	cfg.Setup = "bgplb-lab, 3 nodes, kube-proxy nftables, pod CIDRs over BGP"
	if *ipv6 {
		cfg.Setup += ", dual-stack"
	}
	if a := os.Getenv("BGPLB_DATAPATH_ATTACH"); a != "" {
		cfg.Setup += ", datapath attach " + a
	}
	if l.Opts.Runtime == lab.RuntimeContainerd {
		cfg.Setup += ", containerd + kubelet nodes, bgplb installed from manifests/base and its image"
	}
	cfg.Report = *reportPath
	if cfg.Report == "" {
		cfg.Report = filepath.Join("..", "_output", "conformance-report.yaml")
	}
	runner.Run(t, cfg, labsuite.Adapters(ls))
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func version(bin string) string {
	out, err := exec.Command(filepath.Join(bin, "bgplbd"), "--version").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}
