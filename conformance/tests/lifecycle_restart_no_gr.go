package tests

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/conformance/suite"
	lbv1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// E1: with graceful restart off on the BGPPeer, a daemon restart on one node takes
// that node's next hop out of the router and back; the other nodes' next hops and
// sessions never change.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "LifecycleRestartNoGR",
		ID:        "E1",
		Description: "graceful restart off: bgplbd on one node is killed and restarted; its next hop leaves the " +
			"router and returns within T, the other nodes' next hops and sessions never change",
		Needs:    []suite.Adapter{suite.AdapterFaults},
		Profile:  "LB-BGP",
		Features: []suite.Feature{suite.FeatureETPCluster, suite.FeatureDaemonRestart},
		Slow:     true,
		Test:     testRestartNoGR,
	})
}

// setPeerGR sets graceful restart on every BGPPeer (enabled nil: the default) and
// returns the previous settings by peer name.
func setPeerGR(t *testing.T, s *suite.Suite, gr func(name string) *lbv1.GracefulRestart) map[string]*lbv1.GracefulRestart {
	t.Helper()
	ctx := context.Background()
	old := map[string]*lbv1.GracefulRestart{}
	suite.Eventually(t, 10*time.Second, "update the BGPPeers' graceful restart", func() error {
		peers, err := s.LB.BgplbV1alpha1().BGPPeers().List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for i := range peers.Items {
			p := &peers.Items[i]
			if _, seen := old[p.Name]; !seen {
				old[p.Name] = p.Spec.GracefulRestart.DeepCopy()
			}
			p.Spec.GracefulRestart = gr(p.Name)
			if _, err := s.LB.BgplbV1alpha1().BGPPeers().Update(ctx, p, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("update BGPPeer %s: %w", p.Name, err)
			}
		}
		return nil
	})
	return old
}

func testRestartNoGR(t *testing.T, s *suite.Suite) {
	if s.Faults == nil {
		t.Skip("this cluster provides no fault injection (Suite.Faults)")
	}
	ctx := context.Background()
	ns := s.Namespace(t, "conf-restart-no-gr")
	vip := backedService(t, s, ns, "web", "web")

	old := setPeerGR(t, s, func(string) *lbv1.GracefulRestart { return &lbv1.GracefulRestart{Enabled: ptr.To(false)} })
	t.Cleanup(func() {
		setPeerGR(t, s, func(name string) *lbv1.GracefulRestart { return old[name] })
		s.WaitSessions(t) // later tests start from settled sessions with graceful restart back on
	})
	// Turning the capability off may reset the sessions: start from settled ones.
	s.WaitSessions(t)
	s.EventuallyNextHops(t, vip, s.AllNodeAddrs())
	before := s.RequireSessions(t)

	victim := s.Nodes[len(s.Nodes)-1]
	va := victim.Addresses[0]
	others := slices.DeleteFunc(s.AllNodeAddrs(), func(a netip.Addr) bool { return a == va })
	delete(before, va)

	t.Logf("kill and restart bgplbd on %s", victim.Name)
	start := time.Now()
	if err := s.Faults.SignalDaemon(ctx, victim.Name, syscall.SIGKILL, true); err != nil {
		t.Fatalf("kill and restart bgplbd on %s: %v", victim.Name, err)
	}
	left, back := time.Duration(0), time.Duration(0)
	for back == 0 {
		if time.Since(start) > s.Timeouts.Converge {
			t.Fatalf("%s's next hop did not leave and return within T=%s (left after %s)", victim.Name, s.Timeouts.Converge, left)
		}
		nh, err := s.RIBNextHops(vip)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range others {
			if !slices.Contains(nh, a) {
				t.Fatalf("next hop %s left the router during %s's restart (RIB %v)", a, victim.Name, nh)
			}
		}
		has := slices.Contains(nh, va)
		switch {
		case left == 0 && !has:
			left = time.Since(start)
		case left != 0 && has:
			back = time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%s's next hop left after %s and returned after %s", victim.Name, left.Round(time.Millisecond), back.Round(time.Millisecond))
	s.EventuallyNextHops(t, vip, s.AllNodeAddrs())
	if err := s.SessionsUnchanged(ctx, before); err != nil {
		t.Errorf("the other nodes' sessions changed: %v", err)
	}
}
