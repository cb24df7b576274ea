package tests

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/conformance/suite"
	lbv1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// E7: a node's link is cut under load; with BFD (300 ms × 3) its next hop leaves the
// router's FIB within 1 s, no connection opened after that fails, and the session and
// next hop come back when the link does.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "FailoverNodeLoss",
		ID:        "E7",
		Description: "BFD 300ms x 3: a node's link cut under load (ETP=Local and Cluster); its next hop leaves the " +
			"router's FIB within 1 s, no new connection fails after that, session and next hop back with the link",
		Profile:  "LB-BGP",
		Features: []suite.Feature{suite.FeatureETPLocal, suite.FeatureETPCluster, suite.FeatureBFD},
		Needs:    []suite.Adapter{suite.AdapterNodeLinkFaults, suite.AdapterClient},
		Slow:     true,
		Test:     testNodeLoss,
	})
}

// nodeLossBFD is the BGPPeers' BFD in E7 (the lab router runs the same timers) and
// nodeLossBound the time a lost node may stay in the router's FIB.
var (
	nodeLossBFD   = lbv1.BFD{MinRxMs: ptr.To[int32](300), MinTxMs: ptr.To[int32](300), Multiplier: ptr.To[int32](3)}
	nodeLossBound = time.Second
)

func testNodeLoss(t *testing.T, s *suite.Suite) {
	if s.NodeLinkFaults == nil {
		t.Skip("this cluster provides no way to cut a node's link (Suite.NodeLinkFaults)")
	}
	if len(s.Nodes) < 3 {
		t.Skip("needs 3 nodes: one to lose, two to keep serving")
	}
	ctx := context.Background()
	ns := s.Namespace(t, "conf-node-loss")
	lost := s.Nodes[len(s.Nodes)-1]
	// ETP=Local has a backend on every node, the lost one included; ETP=Cluster only on
	// the kept nodes: a pod on a lost node is unreachable through any node until the
	// control plane removes its endpoint, which is not the load balancer's failover.
	var deployments []string
	for _, n := range s.Nodes {
		deployments = append(deployments, s.Backend(t, ns, "local", n.Name, 1))
		if n.Name != lost.Name {
			deployments = append(deployments, s.Backend(t, ns, "cluster", n.Name, 1))
		}
	}
	for _, d := range deployments {
		s.WaitPods(t, ns, d, 1)
	}
	s.LBService(t, ns, "local", "local", suite.WithLocal)
	s.LBService(t, ns, "cluster", "cluster")
	vips := []netip.Addr{s.WaitIngress(t, ns, "local"), s.WaitIngress(t, ns, "cluster")}
	for _, vip := range vips {
		s.EventuallyNextHops(t, vip, s.AllNodeAddrs())
	}
	setPeerBFD(t, s, &nodeLossBFD)
	waitBFDUp(t, s)
	s.WaitSessions(t)

	load := suite.StartLoad(s, vips, 6, 200000, 2*time.Minute)
	stopped := false
	defer func() {
		if !stopped {
			load.Stop()
		}
	}()
	time.Sleep(2 * time.Second) // the load runs a while on the healthy cluster
	if failed := failures(load.Snapshot(), time.Time{}); len(failed) > 0 {
		t.Fatalf("%d requests failed before the cut, e.g. %v", len(failed), failed[0].Err)
	}

	t.Logf("cut the link of %s (%s)", lost.Name, lost.Addresses[0])
	cut := time.Now()
	if err := s.NodeLinkFaults.SetNodeLink(ctx, lost.Name, false); err != nil {
		t.Fatalf("cut the link of %s: %v", lost.Name, err)
	}
	restored := false
	t.Cleanup(func() {
		if !restored { // never leave a node cut off
			if err := s.NodeLinkFaults.SetNodeLink(context.Background(), lost.Name, true); err != nil {
				t.Errorf("restore the link of %s: %v", lost.Name, err)
			}
		}
	})
	withdrawn := fibWithdrawal(t, s, vips, lost.Addresses[0], cut)
	time.Sleep(5 * time.Second) // new connections after the withdrawal must all succeed
	reqs := load.Stop()
	stopped = true
	before := failures(reqs, time.Time{})
	after := failures(reqs, withdrawn)
	t.Logf("%d requests, %d failed (all started before the withdrawal %s after the cut), %d failed after",
		len(reqs), len(before)-len(after), withdrawn.Sub(cut).Round(time.Millisecond), len(after))
	for _, r := range after {
		t.Errorf("request to %s started %s after the withdrawal failed: %v", r.VIP, r.Start.Sub(withdrawn).Round(time.Millisecond), r.Err)
	}
	if len(after) > 0 {
		t.Errorf("%d requests started after the withdrawal failed", len(after))
	}

	t.Logf("restore the link of %s", lost.Name)
	back := time.Now()
	if err := s.NodeLinkFaults.SetNodeLink(ctx, lost.Name, true); err != nil {
		t.Fatalf("restore the link of %s: %v", lost.Name, err)
	}
	restored = true
	s.WaitSessions(t)
	for _, vip := range vips {
		s.EventuallyNextHops(t, vip, s.AllNodeAddrs())
	}
	waitBFDUp(t, s)
	t.Logf("session, BFD and next hops of %s back %s after the link", lost.Name, time.Since(back).Round(time.Millisecond))
}

// fibWithdrawal polls the router's FIB until addr is no next hop of any vip and
// returns when the last one was seen gone. A query takes time (vtysh), so the
// withdrawal of each vip is known to lie between the start of the last query that still
// showed addr and the end of the first that did not; the test fails when the former is
// past nodeLossBound after since (addr was certainly still there) and logs both.
func fibWithdrawal(t *testing.T, s *suite.Suite, vips []netip.Addr, addr netip.Addr, since time.Time) time.Time {
	t.Helper()
	pending := slices.Clone(vips)
	present := map[netip.Addr]time.Time{} // vip -> start of the last query that showed addr
	var last time.Time
	deadline := since.Add(s.Timeouts.Converge)
	for len(pending) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s still a next hop of %v in the router's FIB %s after the cut", addr, pending, s.Timeouts.Converge)
		}
		for i := 0; i < len(pending); i++ {
			vip := pending[i]
			start := time.Now()
			qctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			hops, err := s.Router.FIBNextHops(qctx, suite.HostPrefix(vip))
			cancel()
			end := time.Now()
			if err != nil {
				continue
			}
			if slices.Contains(hops, addr) {
				present[vip] = start
				continue
			}
			lo, hi := present[vip].Sub(since), end.Sub(since)
			t.Logf("%s left the router's FIB for %s between %s and %s after the cut (next hops %v)", addr, vip,
				max(lo, 0).Round(time.Millisecond), hi.Round(time.Millisecond), hops)
			if lo > nodeLossBound {
				t.Errorf("%s was still in the router's FIB for %s %s after the cut, more than %s", addr, vip, lo.Round(time.Millisecond), nodeLossBound)
			}
			if len(hops) == 0 {
				t.Errorf("the router's FIB has no next hop left for %s", vip)
			}
			last = end
			pending = slices.Delete(pending, i, i+1)
			i--
		}
		time.Sleep(10 * time.Millisecond)
	}
	return last
}

// failures returns the failed requests that started at or after from.
func failures(reqs []suite.Request, from time.Time) []suite.Request {
	var out []suite.Request
	for _, r := range reqs {
		if r.Err != nil && !r.Start.Before(from) {
			out = append(out, r)
		}
	}
	return out
}

// setPeerBFD sets spec.bfd on every BGPPeer and restores the previous settings when
// the test ends.
func setPeerBFD(t *testing.T, s *suite.Suite, b *lbv1.BFD) {
	t.Helper()
	ctx := context.Background()
	old := map[string]*lbv1.BFD{}
	update := func(what string, bfd func(name string) *lbv1.BFD) {
		suite.Eventually(t, 10*time.Second, what, func() error {
			peers, err := s.LB.BgplbV1alpha1().BGPPeers().List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			for i := range peers.Items {
				p := &peers.Items[i]
				if _, seen := old[p.Name]; !seen {
					old[p.Name] = p.Spec.BFD.DeepCopy()
				}
				p.Spec.BFD = bfd(p.Name)
				if _, err := s.LB.BgplbV1alpha1().BGPPeers().Update(ctx, p, metav1.UpdateOptions{}); err != nil {
					return fmt.Errorf("update BGPPeer %s: %w", p.Name, err)
				}
			}
			return nil
		})
	}
	update("set BFD on the BGPPeers", func(string) *lbv1.BFD { return b.DeepCopy() })
	t.Cleanup(func() { update("restore the BGPPeers' BFD", func(name string) *lbv1.BFD { return old[name] }) })
}

// waitBFDUp waits until every node reports BFD Up with every peer.
func waitBFDUp(t *testing.T, s *suite.Suite) {
	t.Helper()
	suite.Eventually(t, s.Timeouts.Converge, "BFD Up on every node's sessions", func() error {
		for _, n := range s.Nodes {
			st, err := s.LB.BgplbV1alpha1().BGPNodeStates().Get(context.Background(), n.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			for _, p := range st.Status.Peers {
				if p.BFD == nil || p.BFD.State != "Up" {
					return fmt.Errorf("%s: BFD with %s is %+v (does the router run BFD?)", n.Name, p.Name, p.BFD)
				}
			}
		}
		return nil
	})
}
