package tests

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	lbv1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"

	"github.com/bgplb/bgplb/conformance/suite"
)

// H1 (StatusMatchesRouter): The Service's bgplb.io/Announced condition names the same nodes
// as the router's next hops, within 2 s of each change (ETP=Local, pods scaled off a node
// and back).
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "StatusMatchesRouter",
		ID:        "H1",
		Description: "The Service's bgplb.io/Announced condition names the same nodes as the router's next hops, " +
			"within 2 s of each change (ETP=Local, pods scaled off a node and back)",
		Profile:  "LB-BGP",
		Features: []suite.Feature{suite.FeatureETPLocal},
		Test:     testStatusMatchesRouter,
	})
}

// statusLag is how far the Announced condition may trail (or lead) the router.
const statusLag = 2 * time.Second

func testStatusMatchesRouter(t *testing.T, s *suite.Suite) {
	ns := s.Namespace(t, "conf-status-router")
	s.Backend(t, ns, "web", s.NodeName(1), 1)
	d2 := s.Backend(t, ns, "web", s.NodeName(2), 1)
	s.LBService(t, ns, "web", "web", suite.WithLocal)
	vip := s.WaitIngress(t, ns, "web")

	t.Log("pods on node1 and node2")
	statusFollowsRouter(t, s, ns, "web", vip, s.NodeName(1), s.NodeName(2))
	t.Log("node2's pod scaled away")
	s.Scale(t, ns, d2, 0)
	statusFollowsRouter(t, s, ns, "web", vip, s.NodeName(1))
	t.Log("node2's pod back")
	s.Scale(t, ns, d2, 1)
	statusFollowsRouter(t, s, ns, "web", vip, s.NodeName(1), s.NodeName(2))
}

// statusFollowsRouter waits until the router's next hops of vip are exactly nodes'
// addresses and the Service's Announced condition names exactly nodes, and fails when
// the two moments are more than statusLag apart.
func statusFollowsRouter(t *testing.T, s *suite.Suite, ns, name string, vip netip.Addr, nodes ...string) {
	t.Helper()
	want := s.NodeAddrs(nodes...)
	slices.SortFunc(want, netip.Addr.Compare)
	slices.Sort(nodes)
	var atRouter, atStatus time.Time
	var lastRouter []netip.Addr
	var lastStatus []string
	deadline := time.Now().Add(s.Timeouts.Converge)
	for (atRouter.IsZero() || atStatus.IsZero()) && time.Now().Before(deadline) {
		if atRouter.IsZero() {
			if hops, err := s.RIBNextHops(vip); err == nil {
				lastRouter = hops
				if slices.Equal(hops, want) {
					atRouter = time.Now()
				}
			}
		}
		if atStatus.IsZero() {
			if named, err := announcedNodes(s, ns, name); err == nil {
				lastStatus = named
				if slices.Equal(named, nodes) {
					atStatus = time.Now()
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if atRouter.IsZero() || atStatus.IsZero() {
		t.Fatalf("after %s: router next hops %v, Announced names %v; want the nodes %v (%v)", s.Timeouts.Converge, lastRouter, lastStatus, nodes, want)
	}
	lag := atStatus.Sub(atRouter)
	t.Logf("router next hops %v; Announced names %v; the condition followed the router after %s", want, nodes, lag.Round(time.Millisecond))
	if lag > statusLag || lag < -statusLag {
		t.Fatalf("the Announced condition and the router's next hops reached %v %s apart (at most %s)", nodes, lag.Round(time.Millisecond), statusLag)
	}
}

// announcedRE reads the node names of an Announced=True message, "announced by N
// node(s) (a, b); ...".
var announcedRE = regexp.MustCompile(`^announced by (\d+) node\(s\) \(([^)]*)\)`)

// announcedNodes returns the nodes the Service's Announced condition names (sorted; none
// when it is not True).
func announcedNodes(s *suite.Suite, ns, name string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	svc, err := s.Kube.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	c := meta.FindStatusCondition(svc.Status.Conditions, lbv1.ConditionAnnounced)
	if c == nil {
		return nil, fmt.Errorf("no %s condition", lbv1.ConditionAnnounced)
	}
	if c.Status != metav1.ConditionTrue {
		return []string{}, nil
	}
	m := announcedRE.FindStringSubmatch(c.Message)
	if m == nil {
		return nil, fmt.Errorf("unexpected message %q", c.Message)
	}
	names := strings.Split(m[2], ", ")
	slices.Sort(names)
	return names, nil
}
