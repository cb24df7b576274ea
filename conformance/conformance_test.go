//go:build lab

// The conformance suite against the one-machine lab: `make conformance` (or `make
// test`) brings up a 3-node lab with bgplbd on every node, configures one pool, one
// peer (the lab's FRR) and one advertisement, runs every registered test and writes
// the report YAML.
package conformance_test

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/conformance/lab"
	"github.com/bgplb/bgplb/conformance/router"
	"github.com/bgplb/bgplb/conformance/suite"
	"github.com/bgplb/bgplb/conformance/tests"
	lbv1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	lbclient "github.com/bgplb/bgplb/daemon/client/clientset/versioned"
)

var (
	reportPath = flag.String("conformance.report", "", "write the report YAML here (default _output/conformance-report.yaml at the repository root)")
	converge   = flag.Duration("conformance.converge", suite.DefaultTimeouts.Converge, "how long a change may take to show at the router (T)")
	labDirFlag = flag.String("conformance.lab-dir", "/run/bgplb-lab-conformance", "lab state directory")
	keepLab    = flag.Bool("conformance.keep-lab", false, "leave the lab running after the suite")
)

// labClient is the lab's client namespace behind the router.
type labClient struct{ ns lab.NetNS }

func (c labClient) Address() netip.Addr { return lab.ClientV4 }

func (c labClient) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return c.ns.Dialer(5*time.Second)(ctx, network, addr)
}

func (c labClient) Ping(ctx context.Context, addr netip.Addr) error {
	out, err := c.ns.Exec(ctx, "ping", "-n", "-c", "1", "-W", "1", addr.String())
	if err != nil {
		return fmt.Errorf("ping %s: %w: %s", addr, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// labFaults restarts daemons through the lab.
type labFaults struct{ l *lab.Lab }

func (f labFaults) SignalDaemon(ctx context.Context, node string, sig syscall.Signal, restart bool) error {
	return f.l.SignalDaemon(ctx, node, sig, restart)
}

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
	cfg, err := l.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	kube, err := l.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	lbc, err := lbclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &suite.Suite{
		Kube:              kube,
		LB:                lbc,
		Router:            router.FRR{Run: l.Router().Vtysh},
		Client:            labClient{ns: lab.NetNS(lab.ClientNS)},
		Faults:            labFaults{l: l},
		Timeouts:          suite.DefaultTimeouts,
		Class:             lbv1.DefaultLoadBalancerClass,
		Mode:              suite.ModeExplicitClass,
		VIPRange:          netip.MustParsePrefix("203.0.113.0/24"),
		SupportedFeatures: suite.AllFeatures(),
		PodImage:          "bgplb.io/podserver:lab",
	}
	s.Timeouts.Converge = *converge
	for _, n := range l.Nodes {
		s.Nodes = append(s.Nodes, suite.Node{Name: n.Name, Addresses: n.IPs})
	}
	baseConfig(t, lbc)

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

// baseConfig creates the pool, the peer and the advertisement every test uses.
func baseConfig(t *testing.T, c lbclient.Interface) {
	ctx := context.Background()
	api := c.BgplbV1alpha1()
	pool := &lbv1.LoadBalancerIPPool{ObjectMeta: metav1.ObjectMeta{Name: "conformance"},
		Spec: lbv1.LoadBalancerIPPoolSpec{Blocks: []lbv1.IPBlock{{CIDR: "203.0.113.0/25"}, {CIDR: "2001:db8:ffff::/120"}}}}
	peer := &lbv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "lab-router"},
		Spec: lbv1.BGPPeerSpec{
			LocalASN: lab.NodeASN, PeerASN: lab.RouterASN, PeerAddress: lab.RouterFabricV4.String(),
			Timers: &lbv1.BGPTimers{ConnectRetrySeconds: ptr.To[int32](2), HoldTimeSeconds: ptr.To[int32](9),
				KeepaliveTimeSeconds: ptr.To[int32](3)},
			GracefulRestart: &lbv1.GracefulRestart{Enabled: true, RestartTimeSeconds: ptr.To[int32](60)},
		}}
	adv := &lbv1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "conformance-base"},
		Spec: lbv1.BGPAdvertisementSpec{ServiceSelector: &metav1.LabelSelector{
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: tests.WeightedLabel, Operator: metav1.LabelSelectorOpDoesNotExist}},
		}}}
	if _, err := api.LoadBalancerIPPools().Create(ctx, pool, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pool: %v", err)
	}
	if _, err := api.BGPPeers().Create(ctx, peer, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create peer: %v", err)
	}
	if _, err := api.BGPAdvertisements().Create(ctx, adv, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create advertisement: %v", err)
	}
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
