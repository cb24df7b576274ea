//go:build bench

package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/conformance/lab"
	"github.com/bgplb/bgplb/conformance/suite"
	lbv1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

var failoverCuts = flag.Int("bench.failover-cuts", 20, "link cuts per mode in TestBenchFailover")

// TestBenchFailover measures node loss → router FIB withdrawal: node3's fabric link is
// cut (the router-side veth goes down, the router's own interface stays up) and the
// router's kernel FIB is polled until node3 is no next hop of an ETP=Cluster VIP, over
// -bench.failover-cuts cuts with BFD (BGPPeer spec.bfd 300 ms × 3, the lab router's
// bfdd the same) and as many without (the BGP hold timer, 9 s in the lab).
func TestBenchFailover(t *testing.T) {
	l, s := benchLab(t)
	ctx := context.Background()
	ns := s.Namespace(t, "bench-failover")
	d := s.Backend(t, ns, "web", "node1", 1)
	s.LBService(t, ns, "web", "web")
	vip := s.WaitIngress(t, ns, "web")
	s.WaitPods(t, ns, d, 1)
	s.EventuallyNextHops(t, vip, s.AllNodeAddrs())
	lost := s.Nodes[len(s.Nodes)-1]
	addr := lost.Addresses[0]

	type mode struct {
		name string
		bfd  *lbv1.BFD
	}
	modes := []mode{
		{"BFD 300 ms × 3", &lbv1.BFD{MinRxMs: ptr.To[int32](300), MinTxMs: ptr.To[int32](300), Multiplier: ptr.To[int32](3)}},
		{"no BFD (hold time 9 s)", nil},
	}
	var rows [][]string
	start := time.Now()
	for _, m := range modes {
		setBFD(t, s, m.bfd)
		s.WaitSessions(t)
		if m.bfd != nil {
			waitBFD(t, s, "Up")
		}
		var lat []time.Duration
		for i := range *failoverCuts {
			cut := time.Now()
			if err := l.SetNodeLink(ctx, lost.Name, false); err != nil {
				t.Fatal(err)
			}
			gone, err := waitFIB(ctx, vip, func(hops []netip.Addr) bool { return !slices.Contains(hops, addr) }, 3*time.Minute)
			if err != nil {
				_ = l.SetNodeLink(ctx, lost.Name, true) // leave the lab whole; the test fails anyway
				t.Fatalf("%s, cut %d: %v", m.name, i, err)
			}
			lat = append(lat, gone.Sub(cut))
			t.Logf("%s, cut %d: withdrawn after %s", m.name, i, gone.Sub(cut).Round(time.Millisecond))
			if err := l.SetNodeLink(ctx, lost.Name, true); err != nil {
				t.Fatal(err)
			}
			if _, err := waitFIB(ctx, vip, func(hops []netip.Addr) bool { return slices.Contains(hops, addr) }, 3*time.Minute); err != nil {
				t.Fatalf("%s, cut %d: node3 not back: %v", m.name, i, err)
			}
			s.WaitSessions(t) // a settled session before the next cut
		}
		rows = append(rows, []string{m.name, fmt.Sprint(len(lat)), ms(Percentile(lat, 50)), ms(Percentile(lat, 99)),
			ms(Percentile(lat, 100))})
		t.Logf("%s: p50 %s p99 %s", m.name, ms(Percentile(lat, 50)), ms(Percentile(lat, 99)))
	}
	setBFD(t, s, nil)
	tab := Table{
		Title: "Failover: node loss → router FIB withdrawal",
		Note: fmt.Sprintf("An ETP=Cluster VIP announced by the 3 nodes; node3's fabric link is cut (its router-side veth goes "+
			"down; the router's bridge interface stays up, like a cable pulled behind a switch) and the router's kernel FIB "+
			"is polled every 10 ms until node3 is no next hop; then the link is restored and the session settles before the "+
			"next cut. Lab router FRR with bfdd (300 ms × 3 for every node), BGP timers 3/9 s, graceful restart on "+
			"(60 s). Target with BFD: ≤ 1 s. Total %s.", time.Since(start).Round(time.Second)),
		Columns: []string{"mode", "cuts", "p50", "p99", "max"},
		Rows:    rows,
	}
	if err := tab.Write(*resultsPath); err != nil {
		t.Fatal(err)
	}
}

// setBFD sets spec.bfd on every BGPPeer (nil: no BFD).
func setBFD(t *testing.T, s *suite.Suite, b *lbv1.BFD) {
	t.Helper()
	suite.Eventually(t, 10*time.Second, "set the BGPPeers' BFD", func() error {
		peers, err := s.LB.BgplbV1alpha1().BGPPeers().List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return err
		}
		for i := range peers.Items {
			p := &peers.Items[i]
			p.Spec.BFD = b.DeepCopy()
			if _, err := s.LB.BgplbV1alpha1().BGPPeers().Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
				return err
			}
		}
		return nil
	})
}

// waitBFD waits until every node reports its BFD sessions in state.
func waitBFD(t *testing.T, s *suite.Suite, state string) {
	t.Helper()
	suite.Eventually(t, s.Timeouts.Converge, "BFD "+state+" on every node", func() error {
		for _, n := range s.Nodes {
			st, err := s.LB.BgplbV1alpha1().BGPNodeStates().Get(context.Background(), n.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			for _, p := range st.Status.Peers {
				if p.BFD == nil || p.BFD.State != state {
					return fmt.Errorf("%s: BFD with %s is %+v", n.Name, p.Name, p.BFD)
				}
			}
		}
		return nil
	})
}

// waitFIB polls the router namespace's kernel route to vip every 10 ms until ok holds
// for its next hops, and returns when it first did.
func waitFIB(ctx context.Context, vip netip.Addr, ok func([]netip.Addr) bool, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		hops, err := kernelNextHops(ctx, vip)
		now := time.Now()
		if err == nil && ok(hops) {
			return now, nil
		}
		if now.After(deadline) {
			return now, fmt.Errorf("router FIB next hops of %s still %v after %s (last error %v)", vip, hops, timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kernelNextHops reads the router namespace's kernel route to vip/32.
func kernelNextHops(ctx context.Context, vip netip.Addr) ([]netip.Addr, error) {
	out, err := lab.NetNS(lab.RouterNS).Exec(ctx, "ip", "-j", "route", "show", "exact", suite.HostPrefix(vip).String())
	if err != nil {
		return nil, fmt.Errorf("ip route show: %w: %s", err, out)
	}
	if len(bytes.TrimSpace(out)) == 0 {
		return nil, nil // no route
	}
	var routes []struct {
		Gateway  string `json:"gateway"`
		Nexthops []struct {
			Gateway string `json:"gateway"`
		} `json:"nexthops"`
	}
	if err := json.Unmarshal(out, &routes); err != nil {
		return nil, fmt.Errorf("parse ip route output: %w", err)
	}
	var hops []netip.Addr
	add := func(g string) {
		if a, err := netip.ParseAddr(g); err == nil {
			hops = append(hops, a)
		}
	}
	for _, r := range routes {
		add(r.Gateway)
		for _, n := range r.Nexthops {
			add(n.Gateway)
		}
	}
	slices.SortFunc(hops, netip.Addr.Compare)
	return hops, nil
}
