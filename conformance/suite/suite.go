package suite

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
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
	Test func(t *testing.T, s *Suite)
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
	// Nodes are the cluster nodes that may announce.
	Nodes    []Node
	Timeouts Timeouts
	// Class is the implementation's loadBalancerClass.
	Class string
	Mode  Mode
	// VIPRange is the range the suite may put in pools it creates for its tests.
	VIPRange netip.Prefix
	// SupportedFeatures; a test needing anything else is skipped.
	SupportedFeatures []Feature
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
// unsupported features, or Faults when there are none, are skipped with a reason.
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
		if r.Reason == "" && short && ct.Slow {
			r.Reason = "slow test left out by -short"
		}
		start := time.Now()
		skipped := false
		passed := t.Run(ct.ShortName, func(t *testing.T) {
			defer func() { skipped = t.Skipped() }()
			if r.Reason != "" {
				t.Skip(r.Reason)
			}
			t.Logf("%s %s: %s", ct.ID, ct.ShortName, ct.Description)
			ct.Test(t, s)
		})
		r.Took = time.Since(start)
		switch {
		case skipped:
			r.Outcome = "skipped"
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
