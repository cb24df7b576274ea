package runner

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/bgplb/bgplb/conformance/router"
	"github.com/bgplb/bgplb/conformance/suite"
	lbv1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	lbclient "github.com/bgplb/bgplb/daemon/client/clientset/versioned"
)

// Config is what bgplb-conformance is told on its command line.
type Config struct {
	Kubeconfig string
	// Router is "frr" or "bird".
	Router string
	// RouterExec is the command prefix that runs the router's CLI.
	RouterExec string
	// RouterCLI is the router's CLI command with its options (default vtysh or birdc).
	RouterCLI string
	// RouterOriginateFile is, for BIRD, a file on the router that bird.conf includes
	// and the suite may replace through RouterExec, to make the router originate
	// prefixes (router.BIRD.OriginateConf); empty: the tests needing that are skipped.
	RouterOriginateFile string
	// ClientExec is the command prefix that runs curl, ping and socat on the client
	// host; empty: no client (the tests that need one are skipped).
	ClientExec    string
	ClientAddress string
	// SubnetClientExec is a second client on the nodes' own subnet (optional).
	SubnetClientExec    string
	SubnetClientAddress string
	PodserverImage      string
	// Profiles to run (empty: all); SkipTests are test short names left out.
	Profiles  []string
	SkipTests []string
	// Report is where the report YAML goes (empty: none).
	Report string

	Class               string
	Mode                string
	VIPRange            string
	Peer                string
	Nodes               []string
	IPv6                bool
	UnsupportedFeatures []string
	Converge            time.Duration
	// DaemonNamespace and DaemonSelector find the bgplbd pods, which the Faults
	// adapter deletes to restart a node's daemon (empty selector: no such adapter).
	DaemonNamespace string
	DaemonSelector  string
	// FaultsExec is a command (prefix) that raises the faults the API cannot
	// (ExecFaults); empty: none.
	FaultsExec string

	Implementation        string
	ImplementationVersion string
	Setup                 string
	// KubernetesVersion, when set, replaces the API server's own version in the report.
	KubernetesVersion string
}

// listFlag is a comma-separated list flag.
type listFlag struct{ p *[]string }

func (l listFlag) String() string {
	if l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}

func (l listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l.p = append(*l.p, s)
		}
	}
	return nil
}

// AddFlags registers the command's flags on fs (the Go flag package accepts them with
// one dash or two) and returns the Config they fill.
func AddFlags(fs *flag.FlagSet) *Config {
	c := &Config{}
	fs.StringVar(&c.Kubeconfig, "kubeconfig", "", "kubeconfig of the cluster under test (default: $KUBECONFIG, ~/.kube/config)")
	fs.StringVar(&c.Router, "router", "frr", "the router's implementation: frr (vtysh JSON) or bird (BIRD 2, birdc)")
	fs.StringVar(&c.RouterExec, "router-exec", "", `command prefix that runs the router's CLI, e.g. "ip netns exec bgplb-router", "ssh admin@router", "kubectl exec -n net router-0 --" (empty: this machine)`)
	fs.StringVar(&c.RouterCLI, "router-cli", "", `the router's CLI with options (default "vtysh" for frr, "birdc" for bird), e.g. "vtysh --vty_socket /run/frr" or "birdc -s /run/bird/bird.ctl"`)
	fs.StringVar(&c.RouterOriginateFile, "router-originate-file", "", `bird only: a file on the router that bird.conf includes and "--router-exec tee FILE" may write; the suite puts static protocols there (bgplb_originate_ipv4/6, which the node sessions of "bgplbctl router-config bird" export) to test what nodes do with routes they receive (empty: those tests are skipped)`)
	fs.StringVar(&c.ClientExec, "client-exec", "", `command prefix that runs curl, ping and socat on a host outside the cluster whose traffic goes through the router, e.g. "ssh tester@client" (empty: no client; the tests needing one are skipped)`)
	fs.StringVar(&c.ClientAddress, "client-address", "", "the client's IPv4 address as the cluster sees it (default: its source address towards --vip-range)")
	fs.StringVar(&c.SubnetClientExec, "subnet-client-exec", "", "command prefix of a second client on the nodes' own subnet that routes the VIPs through the router (needs ip, nft, curl); optional")
	fs.StringVar(&c.SubnetClientAddress, "subnet-client-address", "", "the subnet client's IPv4 address (default: its source address towards --vip-range)")
	fs.StringVar(&c.PodserverImage, "podserver-image", "ghcr.io/bgplb/podserver:latest", "image of the test workloads (the conformance pod server, `make image`)")
	fs.Var(listFlag{&c.Profiles}, "profiles", "comma-separated profiles to run (default: all): "+profileNames())
	fs.Var(listFlag{&c.SkipTests}, "skip-tests", "comma-separated test short names to leave out (reported as skipped)")
	fs.StringVar(&c.Report, "report", "", "write the report YAML here")
	fs.StringVar(&c.Class, "class", lbv1.DefaultLoadBalancerClass, "the implementation's loadBalancerClass")
	fs.StringVar(&c.Mode, "mode", string(suite.ModeExplicitClass), "class selection mode: explicit-class or default-class")
	fs.StringVar(&c.VIPRange, "vip-range", "203.0.113.0/24", "range of the cluster's pools that the suite may also use for pools of its own; every ingress IP must lie in it")
	fs.StringVar(&c.Peer, "peer", "lab-router", "name of the BGPPeer of the router under test")
	fs.Var(listFlag{&c.Nodes}, "nodes", "comma-separated names of the (at least 3) nodes the tests use, in order (default: every node, sorted by name)")
	fs.BoolVar(&c.IPv6, "ipv6", false, "the cluster is dual-stack: run the IPv6 and DualStack tests")
	fs.Var(listFlag{&c.UnsupportedFeatures}, "unsupported-features", "comma-separated features the implementation does not support (their tests are skipped)")
	fs.DurationVar(&c.Converge, "converge", suite.DefaultTimeouts.Converge, "how long a change may take to show at the router (T)")
	fs.StringVar(&c.DaemonNamespace, "daemon-namespace", "bgplb-system", "namespace of the bgplbd pods")
	fs.StringVar(&c.DaemonSelector, "daemon-selector", "", `label selector of the bgplbd pods, e.g. "app.kubernetes.io/name=bgplb": the restart tests delete them (empty: those tests are skipped)`)
	fs.StringVar(&c.FaultsExec, "faults-exec", "", `command that raises faults the API cannot (bgplbd signalled, the router's BGP daemon killed, the API server paused, the nodes' routes read; protocol in package runner's ExecFaults), e.g. "bgplb-lab fault --dir /run/bgplb-lab"`)
	fs.StringVar(&c.Implementation, "implementation", "bgplb", "name of the implementation, for the report")
	fs.StringVar(&c.ImplementationVersion, "implementation-version", "unknown", "version of the implementation, for the report")
	fs.StringVar(&c.Setup, "setup", "", "a line describing the cluster, for the report")
	fs.StringVar(&c.KubernetesVersion, "kubernetes-version", "", "the Kubernetes version for the report (default: what the API server says)")
	return c
}

func profileNames() string {
	var n []string
	for _, p := range suite.Profiles {
		n = append(n, p.Name)
	}
	return strings.Join(n, ", ")
}

// ErrConfig marks a command line the suite cannot run with.
var ErrConfig = errors.New("invalid configuration")

// validate checks the flags that need no cluster.
func (c *Config) validate() error {
	if c.Router != "frr" && c.Router != "bird" {
		return fmt.Errorf("%w: --router %q: want frr or bird", ErrConfig, c.Router)
	}
	if c.RouterOriginateFile != "" && c.Router != "bird" {
		return fmt.Errorf("%w: --router-originate-file is for --router bird (FRR is configured through vtysh)", ErrConfig)
	}
	if c.Mode != string(suite.ModeExplicitClass) && c.Mode != string(suite.ModeDefaultClass) {
		return fmt.Errorf("%w: --mode %q: want explicit-class or default-class", ErrConfig, c.Mode)
	}
	if _, err := netip.ParsePrefix(c.VIPRange); err != nil {
		return fmt.Errorf("%w: --vip-range: %w", ErrConfig, err)
	}
	for _, p := range c.Profiles {
		if !slices.ContainsFunc(suite.Profiles, func(q suite.Profile) bool { return q.Name == p }) {
			return fmt.Errorf("%w: --profiles: unknown profile %q (known: %s)", ErrConfig, p, profileNames())
		}
	}
	return nil
}

// RouterAdapter returns the router reader for --router through --router-exec.
func (c *Config) RouterAdapter() (router.Router, error) {
	prefix, err := suite.ParseExec(c.RouterExec)
	if err != nil {
		return nil, fmt.Errorf("%w: --router-exec: %w", ErrConfig, err)
	}
	cliText := c.RouterCLI
	if cliText == "" {
		cliText = map[string]string{"frr": "vtysh", "bird": "birdc"}[c.Router]
	}
	cli, err := suite.ParseExec(cliText)
	if err != nil || len(cli) == 0 {
		return nil, fmt.Errorf("%w: --router-cli %q: %v", ErrConfig, cliText, err)
	}
	run := suite.Exec(append(slices.Clone(prefix), cli...))
	if c.Router == "bird" {
		b := router.BIRD{
			Run: func(ctx context.Context, command string) ([]byte, error) {
				return run.Run(ctx, strings.Fields(command)...)
			},
			IP: func(ctx context.Context, args ...string) ([]byte, error) {
				return prefix.Run(ctx, append([]string{"ip"}, args...)...)
			},
		}
		if c.RouterOriginateFile != "" {
			b.OriginateConf = c.RouterOriginateFile
			b.WriteFile = func(ctx context.Context, path string, data []byte) error {
				_, err := prefix.RunInput(ctx, data, "tee", path)
				return err
			}
		}
		return b, nil
	}
	return router.FRR{Run: func(ctx context.Context, command string) ([]byte, error) {
		return run.Run(ctx, "-c", command)
	}}, nil
}

// CheckRouter reads the router's sessions once, so a wrong --router-exec or --router
// fails before any test with the command that failed.
func (c *Config) CheckRouter(ctx context.Context, r router.Router) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := r.Neighbors(ctx); err != nil {
		return fmt.Errorf("the router adapter (--router %s --router-exec %q) cannot read the router's BGP sessions: %w", c.Router, c.RouterExec, err)
	}
	return nil
}

// Build connects to the cluster and the router and returns the suite the flags
// describe. The lab's adapters are added by the caller.
func (c *Config) Build(ctx context.Context) (*suite.Suite, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	r, err := c.RouterAdapter()
	if err != nil {
		return nil, err
	}
	if err := c.CheckRouter(ctx, r); err != nil {
		return nil, err
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if c.Kubeconfig != "" {
		rules.ExplicitPath = c.Kubeconfig
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %q: %w", c.Kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create clientset: %w", err)
	}
	lbc, err := lbclient.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create bgplb clientset: %w", err)
	}
	vipRange := netip.MustParsePrefix(c.VIPRange) // validated
	s := &suite.Suite{
		Kube: kube, LB: lbc, Router: r,
		Timeouts: suite.DefaultTimeouts,
		Class:    c.Class, Mode: suite.Mode(c.Mode), VIPRange: vipRange, PeerName: c.Peer,
		SupportedFeatures: suite.AllFeatures(),
		PodImage:          c.PodserverImage,
	}
	s.Timeouts.Converge = c.Converge
	if s.Nodes, err = c.nodes(ctx, kube); err != nil {
		return nil, err
	}
	if c.ClientExec != "" {
		cl, err := c.execClient(ctx, c.ClientExec, c.ClientAddress, vipRange)
		if err != nil {
			return nil, fmt.Errorf("--client-exec: %w", err)
		}
		s.Client = cl
	}
	if c.SubnetClientExec != "" {
		cl, err := c.execClient(ctx, c.SubnetClientExec, c.SubnetClientAddress, vipRange)
		if err != nil {
			return nil, fmt.Errorf("--subnet-client-exec: %w", err)
		}
		s.SubnetClient = suite.ExecSubnetClient{ExecClient: cl}
	}
	if c.DaemonSelector != "" {
		s.Faults = APIFaults{Kube: kube, Namespace: c.DaemonNamespace, Selector: c.DaemonSelector}
	}
	if c.FaultsExec != "" {
		if err := addExecFaults(ctx, s, c.FaultsExec); err != nil {
			return nil, fmt.Errorf("--faults-exec: %w", err)
		}
	}
	drop := slices.Clone(c.UnsupportedFeatures)
	if !c.IPv6 {
		drop = append(drop, string(suite.FeatureIPv6), string(suite.FeatureDualStack))
	}
	s.SupportedFeatures = slices.DeleteFunc(s.SupportedFeatures, func(f suite.Feature) bool {
		return slices.Contains(drop, string(f))
	})
	return s, nil
}

// execClient is the client behind prefix; its address is given or its source address
// towards the VIP range.
func (c *Config) execClient(ctx context.Context, prefixText, addrText string, vips netip.Prefix) (suite.ExecClient, error) {
	prefix, err := suite.ParseExec(prefixText)
	if err != nil {
		return suite.ExecClient{}, err
	}
	cl := suite.ExecClient{Exec: prefix}
	if addrText != "" {
		if cl.Addr, err = netip.ParseAddr(addrText); err != nil {
			return cl, fmt.Errorf("client address: %w", err)
		}
		return cl, nil
	}
	out, err := prefix.Run(ctx, "ip", "-j", "route", "get", vips.Addr().Next().String())
	if err != nil {
		return cl, fmt.Errorf("find the client's address (or give it): %w", err)
	}
	src, err := prefSrc(out)
	if err != nil {
		return cl, fmt.Errorf("find the client's address (or give it): %w", err)
	}
	cl.Addr = src
	return cl, nil
}

// nodes returns --nodes (or every node sorted by name) with their InternalIPs.
func (c *Config) nodes(ctx context.Context, kube kubernetes.Interface) ([]suite.Node, error) {
	list, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	byName := map[string]corev1.Node{}
	var names []string
	for _, n := range list.Items {
		byName[n.Name] = n
		names = append(names, n.Name)
	}
	sort.Strings(names)
	if len(c.Nodes) > 0 {
		names = c.Nodes
	}
	var out []suite.Node
	for _, name := range names {
		n, ok := byName[name]
		if !ok {
			return nil, fmt.Errorf("%w: --nodes: the cluster has no node %q", ErrConfig, name)
		}
		sn := suite.Node{Name: name}
		for _, a := range n.Status.Addresses {
			if a.Type != corev1.NodeInternalIP {
				continue
			}
			if ip, err := netip.ParseAddr(a.Address); err == nil {
				sn.Addresses = append(sn.Addresses, ip)
			}
		}
		// IPv4 first: the suite's first address is the next hop of IPv4 VIPs.
		slices.SortStableFunc(sn.Addresses, func(a, b netip.Addr) int {
			if a.Is4() == b.Is4() {
				return 0
			}
			if a.Is4() {
				return -1
			}
			return 1
		})
		if len(sn.Addresses) == 0 {
			return nil, fmt.Errorf("node %s has no InternalIP", name)
		}
		out = append(out, sn)
	}
	if len(out) < 3 {
		return nil, fmt.Errorf("%w: the suite needs at least 3 nodes, has %d", ErrConfig, len(out))
	}
	return out, nil
}

// kernel is the kernel of the suite's first node, as its kubelet reports it.
func kernel(ctx context.Context, s *suite.Suite) string {
	n, err := s.Kube.CoreV1().Nodes().Get(ctx, s.Nodes[0].Name, metav1.GetOptions{})
	if err != nil || n.Status.NodeInfo.KernelVersion == "" {
		return "unknown"
	}
	return n.Status.NodeInfo.KernelVersion
}

// absPath makes a report path absolute (go test runs in the package directory).
func absPath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
