package suite

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/bgplb/bgplb/conformance/router"
	lbclient "github.com/bgplb/bgplb/daemon/client/clientset/versioned"
)

// ConformanceTest is one test of the suite, registered by package tests in init().
type ConformanceTest struct {
	// ShortName is the test's name in reports, e.g. "BGPLocalExactNextHops".
	ShortName string
	// ID links the test to docs/conformance.md, e.g. "C2".
	ID          string
	Description string
	// Profile is the profile the test reports to.
	Profile string
	// Features the implementation must support for the test to run.
	Features []Feature
	// Slow tests are left out by -short.
	Slow bool
	// Needs lists the adapters the test uses besides the API server and the router;
	// a run without one of them skips the test with the reason (a core test's skip
	// makes its profile "partial"). Every LB-DATAPATH test needs AdapterClient
	// whether listed or not.
	Needs []Adapter
	Test  func(t *testing.T, s *Suite)
}

// Adapter names an optional part of the Suite.
type Adapter string

// Adapters a test may need; each says which bgplb-conformance flag provides it.
const (
	AdapterClient             Adapter = "Client"
	AdapterSubnetClient       Adapter = "SubnetClient"
	AdapterFaults             Adapter = "Faults"
	AdapterRouterFaults       Adapter = "RouterFaults"
	AdapterControlPlaneFaults Adapter = "ControlPlaneFaults"
	AdapterNodeRoutes         Adapter = "NodeRoutes"
	AdapterNodeLinkFaults     Adapter = "NodeLinkFaults"
	AdapterNodeExec           Adapter = "NodeExec"
)

// AdapterHints says how a run gets each adapter, for skip reasons.
var AdapterHints = map[Adapter]string{
	AdapterClient:             "--client-exec",
	AdapterSubnetClient:       "--subnet-client-exec",
	AdapterFaults:             "--daemon-selector (bgplbd pods deleted through the API) or --faults-exec",
	AdapterRouterFaults:       "--faults-exec with router-bgp",
	AdapterControlPlaneFaults: "--faults-exec with apiserver",
	AdapterNodeRoutes:         "--faults-exec with node-routes",
	AdapterNodeLinkFaults:     "the lab (bgplb-lab cuts a node's router-side veth) or --faults-exec with the node-link capability",
	AdapterNodeExec:           "--faults-exec with the node-exec capability (real nodes: bgplb-lab --runtime containerd)",
}

// NeededAdapters returns the adapters the test needs (Needs, and the client for every
// LB-DATAPATH test).
func (c ConformanceTest) NeededAdapters() []Adapter {
	out := slices.Clone(c.Needs)
	if c.Profile == "LB-DATAPATH" && !slices.Contains(out, AdapterClient) {
		out = append([]Adapter{AdapterClient}, out...)
	}
	return out
}

// Has reports whether the suite has adapter a.
func (s *Suite) Has(a Adapter) bool {
	switch a {
	case AdapterClient:
		return s.Client != nil
	case AdapterSubnetClient:
		return s.SubnetClient != nil
	case AdapterFaults:
		return s.Faults != nil
	case AdapterRouterFaults:
		return s.RouterFaults != nil
	case AdapterControlPlaneFaults:
		return s.ControlPlaneFaults != nil
	case AdapterNodeRoutes:
		return s.NodeRoutes != nil
	case AdapterNodeLinkFaults:
		return s.NodeLinkFaults != nil
	case AdapterNodeExec:
		return s.NodeExec != nil
	}
	return false
}

// Extended reports whether the test exercises an extended feature of its profile.
func (c ConformanceTest) Extended() bool {
	for _, p := range Profiles {
		if p.Name != c.Profile {
			continue
		}
		for _, f := range c.Features {
			if slices.Contains(p.Extended, f) {
				return true
			}
		}
	}
	return false
}

// Client is where external traffic comes from (the lab's client namespace, behind the
// router). Every request opens a new connection, so each one is a new flow.
type Client interface {
	// Address is the client's own IPv4 address (what /clientip must return).
	Address() netip.Addr
	// Dial opens a connection from the client.
	Dial(ctx context.Context, network, addr string) (net.Conn, error)
	// Ping sends ICMP echo requests to addr and succeeds when one is answered.
	Ping(ctx context.Context, addr netip.Addr) error
}

// SubnetClient is a client on the nodes' own subnet whose route to the VIPs goes
// through the router: replies must come back through the router too (a stateful
// router drops half-seen connections), not straight from the node.
type SubnetClient interface {
	Client
	// CountReplies runs fn and counts the IPv4 packets from src that reached the
	// client, split by whether they came from the router's MAC address or another one.
	CountReplies(ctx context.Context, src netip.Addr, fn func() error) (viaRouter, direct int, err error)
}

// Faults injects failures the lifecycle tests need. A cluster that cannot provide
// them leaves Suite.Faults nil and those tests are skipped (and reported as skipped).
type Faults interface {
	// SignalDaemon sends sig to bgplbd on node and, if restart is set, starts it again
	// (as its supervisor would) once it has exited.
	SignalDaemon(ctx context.Context, node string, sig syscall.Signal, restart bool) error
}

// RouterFaults stops and starts the router's BGP daemon. A cluster that cannot provide
// it leaves Suite.RouterFaults nil and the tests needing it are skipped (and reported).
type RouterFaults interface {
	// KillRouterBGP kills the router's BGP daemon (no Cease is sent) and returns once it
	// is gone; the router's other daemons keep running.
	KillRouterBGP(ctx context.Context) error
	// StartRouterBGP starts the router's BGP daemon again with its configuration.
	StartRouterBGP(ctx context.Context) error
}

// ControlPlaneFaults makes the API server unavailable. A cluster that cannot provide it
// leaves Suite.ControlPlaneFaults nil and the tests needing it are skipped (and reported).
type ControlPlaneFaults interface {
	// PauseAPIServer makes the API server stop answering (pause true: requests and
	// watches hang) or answer again (pause false).
	PauseAPIServer(ctx context.Context, pause bool) error
}

// NodeLinkFaults cuts a node off the network and restores it. A cluster that cannot
// provide it leaves Suite.NodeLinkFaults nil and the tests needing it are skipped (and
// reported).
type NodeLinkFaults interface {
	// SetNodeLink cuts (up false) or restores (up true) the node's link towards the
	// router: no packet passes either way while the node keeps running, and the
	// router's own interface stays up (a cable pulled behind a switch).
	SetNodeLink(ctx context.Context, node string, up bool) error
}

// NodeRoutes reads the nodes' kernel routing tables. A cluster that cannot provide it
// leaves Suite.NodeRoutes nil and the tests needing it are skipped (and reported).
type NodeRoutes interface {
	// Routes returns the routes of node, in every routing table, whose destination is
	// exactly prefix (none: empty), each as the kernel prints it.
	Routes(ctx context.Context, node string, prefix netip.Prefix) ([]string, error)
}

// NodeExec runs commands on a node as root, in the node's own network and mount
// namespaces (what a shell on the machine sees: /opt/cni/bin, /sys/fs/bpf, bgplbd's
// socket), with bgplbctl on its PATH. A cluster that cannot provide it leaves
// Suite.NodeExec nil and the tests needing it (CNI-CHAINED) are skipped (and reported).
type NodeExec interface {
	// NodeExec runs argv on node with stdin (may be nil) and returns its standard output.
	// A non-zero exit is an error (wrapping *exec.ExitError when the
	// adapter runs a local command); stdout is returned with it.
	NodeExec(ctx context.Context, node string, stdin []byte, argv ...string) ([]byte, error)
}

// Node is a cluster node as the router sees it.
type Node struct {
	Name string
	// Addresses are the node's addresses the router peers with (the BGP next hops).
	Addresses []netip.Addr
}

// Timeouts of the suite; every deadline is configurable.
type Timeouts struct {
	// Converge bounds how long a change takes to show at the router (T in docs/conformance.md).
	Converge time.Duration
	// Consistently is how long "stays so" assertions watch.
	Consistently time.Duration
	// PodReady bounds how long workloads take to become ready.
	PodReady time.Duration
	// Request bounds one request from the client.
	Request time.Duration
}

// DefaultTimeouts suit the lab.
var DefaultTimeouts = Timeouts{Converge: 30 * time.Second, Consistently: 15 * time.Second,
	PodReady: 90 * time.Second, Request: 3 * time.Second}

// WeightedLabel marks Services that the suite's base advertisement leaves out, so a
// test can select them with an advertisement of its own (weighted ECMP).
const WeightedLabel = "bgplb.io/conformance-weighted"

// Mode is how the implementation selects Services.
type Mode string

// Modes of class selection (B3).
const (
	ModeExplicitClass Mode = "explicit-class"
	ModeDefaultClass  Mode = "default-class"
)

// Suite is what every test gets.
type Suite struct {
	// skipReasons holds the reasons given to Skip, by test short name.
	skipReasons sync.Map

	Kube   kubernetes.Interface
	LB     lbclient.Interface
	Router router.Router
	Client Client
	// SubnetClient is optional; tests that need it are skipped without it.
	SubnetClient SubnetClient
	Faults       Faults
	// NodeRoutes is optional; tests that need it are skipped without it.
	NodeRoutes NodeRoutes
	// RouterFaults is optional; tests that need it are skipped without it.
	RouterFaults RouterFaults
	// ControlPlaneFaults is optional; tests that need it are skipped without it.
	ControlPlaneFaults ControlPlaneFaults
	// NodeLinkFaults is optional; tests that need it are skipped without it.
	NodeLinkFaults NodeLinkFaults
	// NodeExec is optional; tests that need it are skipped without it.
	NodeExec NodeExec
	// Nodes are the cluster nodes that may announce.
	Nodes    []Node
	Timeouts Timeouts
	// Class is the implementation's loadBalancerClass.
	Class string
	Mode  Mode
	// PeerName is the BGPPeer of the router under test (the lab's "lab-router").
	PeerName string
	// VIPRange is the range the suite may put in pools it creates for its tests.
	VIPRange netip.Prefix
	// SupportedFeatures; a test needing anything else is skipped.
	SupportedFeatures []Feature
	// SkipTests maps the short names of tests this run leaves out to the reason.
	SkipTests map[string]string
	// PodImage is the image of test workloads (the lab runs its pod server whatever
	// the image says).
	PodImage string
}

// NodeAddr returns the first address of the named node.
func (s *Suite) NodeAddr(name string) netip.Addr {
	for _, n := range s.Nodes {
		if n.Name == name {
			return n.Addresses[0]
		}
	}
	panic(fmt.Sprintf("suite has no node %q", name))
}

// NodeAddrs returns the first address of each named node, sorted.
func (s *Suite) NodeAddrs(names ...string) []netip.Addr {
	out := make([]netip.Addr, 0, len(names))
	for _, n := range names {
		out = append(out, s.NodeAddr(n))
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// AllNodeAddrs returns the first address of every node, sorted.
func (s *Suite) AllNodeAddrs() []netip.Addr {
	var names []string
	for _, n := range s.Nodes {
		names = append(names, n.Name)
	}
	return s.NodeAddrs(names...)
}

// Result is the outcome of one test.
type Result struct {
	Test    ConformanceTest
	Outcome string // "passed", "failed", "skipped"
	Reason  string // why it was skipped
	Took    time.Duration
}

// Run runs tests as subtests of t and returns their results. Tests needing
// unsupported features, or adapters the suite lacks, are skipped with a reason; tests
// that -test.run does not select are left out of the results.
func Run(t *testing.T, s *Suite, tests []ConformanceTest, short bool) []Result {
	var results []Result
	for _, ct := range tests {
		ct := ct
		r := Result{Test: ct}
		for _, f := range ct.Features {
			if !slices.Contains(s.SupportedFeatures, f) {
				r.Reason = fmt.Sprintf("feature %s not supported", f)
			}
		}
		if why, ok := s.SkipTests[ct.ShortName]; ok && r.Reason == "" {
			r.Reason = why
		}
		for _, a := range ct.NeededAdapters() {
			if r.Reason == "" && !s.Has(a) {
				r.Reason = fmt.Sprintf("no %s adapter in this run (given by %s)", a, AdapterHints[a])
			}
		}
		if r.Reason == "" && short && ct.Slow {
			r.Reason = "slow test left out by -short"
		}
		start := time.Now()
		skipped := false
		ran := false
		passed := t.Run(ct.ShortName, func(t *testing.T) {
			ran = true
			defer func() { skipped = t.Skipped() }()
			if r.Reason != "" {
				t.Skip(r.Reason)
			}
			t.Logf("%s %s: %s", ct.ID, ct.ShortName, ct.Description)
			ct.Test(t, s)
		})
		r.Took = time.Since(start)
		if !ran {
			continue // not selected by -test.run: not part of this run or its report
		}
		switch {
		case skipped:
			r.Outcome = "skipped"
			if why, ok := s.skipReasons.Load(ct.ShortName); ok && r.Reason == "" {
				r.Reason = why.(string)
			}
			if r.Reason == "" {
				r.Reason = "skipped by the test (see its log)"
			}
		case passed:
			r.Outcome = "passed"
		default:
			r.Outcome = "failed"
		}
		results = append(results, r)
	}
	return results
}

// Skip skips the running test t with reason, which the report then gives as the
// test's skip reason (a plain t.Skip is reported as "skipped by the test").
func (s *Suite) Skip(t *testing.T, reason string) {
	t.Helper()
	// t is the test Run started (TOP/ShortName) or one of its subtests.
	if parts := strings.Split(t.Name(), "/"); len(parts) > 1 {
		s.skipReasons.Store(parts[1], reason)
	}
	t.Skip(reason)
}

// NodeName returns the name of the suite's i-th node, counting from 1 (node i of a
// test's plan: the lab's node1, node2, node3, or the i-th node of --nodes).
func (s *Suite) NodeName(i int) string {
	if i < 1 || i > len(s.Nodes) {
		panic(fmt.Sprintf("suite has %d nodes, no node %d", len(s.Nodes), i))
	}
	return s.Nodes[i-1].Name
}
