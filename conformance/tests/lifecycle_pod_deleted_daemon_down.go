package tests

import (
	"context"
	"errors"
	"syscall"
	"testing"

	"github.com/bgplb/bgplb/conformance/suite"
)

// E6: the only pod of an ETP=Local Service is deleted while bgplbd on its node is down;
// once the daemon is back the node withdraws the VIP (it does not resurrect the gone
// endpoint from its saved state), and a new pod there brings the route back.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "LifecyclePodDeletedDaemonDown",
		ID:        "E6",
		Description: "the last pod of an ETP=Local VIP is deleted while bgplbd on its node is down: after the " +
			"restart the route is withdrawn within T; a new pod brings it back",
		Needs:    []suite.Adapter{suite.AdapterFaults},
		Profile:  "LB-BGP",
		Features: []suite.Feature{suite.FeatureETPLocal, suite.FeatureWithdrawNoEP, suite.FeatureDaemonRestart},
		Test:     testPodDeletedDaemonDown,
	})
}

func testPodDeletedDaemonDown(t *testing.T, s *suite.Suite) {
	if s.Faults == nil {
		t.Skip("this cluster provides no fault injection (Suite.Faults)")
	}
	ctx := context.Background()
	ns := s.Namespace(t, "conf-pod-gone-daemon-down")
	node := s.NodeName(2)
	d := s.Backend(t, ns, "gone", node, 1)
	s.LBService(t, ns, "gone", "gone", suite.WithLocal)
	vip := s.WaitIngress(t, ns, "gone")
	s.WaitPods(t, ns, d, 1)
	s.EventuallyNextHops(t, vip, s.NodeAddrs(node))

	t.Logf("stop bgplbd on %s", node)
	if err := s.Faults.SignalDaemon(ctx, node, syscall.SIGKILL, false); errors.Is(err, suite.ErrUnsupported) {
		t.Skipf("the Faults adapter cannot keep bgplbd down: %v", err)
	} else if err != nil {
		t.Fatalf("kill bgplbd on %s: %v", node, err)
	}
	down := true
	t.Cleanup(func() {
		if down { // never leave the node without its daemon
			if err := s.Faults.SignalDaemon(context.Background(), node, syscall.SIGKILL, true); err != nil {
				t.Errorf("restart bgplbd on %s: %v", node, err)
			}
		}
	})

	t.Log("delete the only pod while the daemon is down")
	s.Scale(t, ns, d, 0)

	t.Logf("start bgplbd on %s again", node)
	if err := s.Faults.SignalDaemon(ctx, node, syscall.SIGKILL, true); err != nil {
		t.Fatalf("start bgplbd on %s: %v", node, err)
	}
	down = false
	s.EventuallyNextHops(t, vip, nil)
	s.RequireSessions(t)
	s.ConsistentlyNextHops(t, vip, nil, s.Timeouts.Consistently/3)

	t.Log("a new pod on the node: announced again")
	s.Scale(t, ns, d, 1)
	s.EventuallyNextHops(t, vip, s.NodeAddrs(node))
}
