package tests

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/conformance/suite"
)

// E4: the router's BGP daemon is killed and stays away past the hold time (every node
// reports its session down), then starts again: every session and the VIP's next hops
// are back within T.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "LifecycleRouterRestart",
		ID:        "E4",
		Description: "the router's BGP daemon killed and kept away past the hold time (every BGPNodeState shows the " +
			"session down), then restarted: every session and the VIP's next hops are back within T",
		Needs:    []suite.Adapter{suite.AdapterRouterFaults},
		Profile:  "LB-BGP",
		Features: []suite.Feature{suite.FeatureETPCluster},
		Slow:     true,
		Test:     testRouterRestart,
	})
}

func testRouterRestart(t *testing.T, s *suite.Suite) {
	if s.RouterFaults == nil {
		t.Skip("this cluster provides no way to stop the router's BGP daemon (Suite.RouterFaults)")
	}
	ctx := context.Background()
	ns := s.Namespace(t, "conf-router-restart")
	vip := backedService(t, s, ns, "web", "web")
	s.RequireSessions(t)

	t.Log("kill the router's BGP daemon")
	stopped := time.Now()
	if err := s.RouterFaults.KillRouterBGP(ctx); err != nil {
		t.Fatalf("kill the router's BGP daemon: %v", err)
	}
	running := false
	t.Cleanup(func() {
		if !running { // never leave the router without BGP
			if err := s.RouterFaults.StartRouterBGP(context.Background()); err != nil {
				t.Errorf("start the router's BGP daemon: %v", err)
			}
		}
	})
	// Past the hold time: every node has noticed (its BGPNodeState says the session is down).
	suite.Eventually(t, s.Timeouts.Converge, "every node reports its session down", func() error {
		for _, n := range s.Nodes {
			st, err := s.LB.BgplbV1alpha1().BGPNodeStates().Get(ctx, n.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			for _, p := range st.Status.Peers {
				if p.State == "Established" {
					return fmt.Errorf("%s: session with %s still Established", n.Name, p.Name)
				}
			}
		}
		return nil
	})
	t.Logf("every node reports its session down %s after the kill", time.Since(stopped).Round(time.Millisecond))

	// The fault lasts past the peers' hold time (capped at T), so no session can survive
	// it on a timer.
	hold := time.Duration(0)
	peers, err := s.LB.BgplbV1alpha1().BGPPeers().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range peers.Items {
		h := 90 * time.Second // the API default
		if p.Spec.Timers != nil && p.Spec.Timers.HoldTimeSeconds != nil {
			h = time.Duration(*p.Spec.Timers.HoldTimeSeconds) * time.Second
		}
		hold = max(hold, h)
	}
	hold = min(hold, s.Timeouts.Converge)
	time.Sleep(time.Until(stopped.Add(hold + time.Second)))

	t.Logf("start the router's BGP daemon again, %s after the kill", time.Since(stopped).Round(time.Millisecond))
	restart := time.Now()
	if err := s.RouterFaults.StartRouterBGP(ctx); err != nil {
		t.Fatalf("start the router's BGP daemon: %v", err)
	}
	running = true
	s.RequireSessions(t)
	s.EventuallyNextHops(t, vip, s.AllNodeAddrs())
	took := time.Since(restart)
	t.Logf("sessions and next hops back %s after the restart", took.Round(time.Millisecond))
	if took > s.Timeouts.Converge {
		t.Errorf("recovery took %s, more than T=%s", took, s.Timeouts.Converge)
	}
}
