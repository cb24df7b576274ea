//go:build lab

package lab_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/conformance/lab"
	"github.com/bgplb/bgplb/conformance/labsuite"
	lbv1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"

	"github.com/bgplb/bgplb/internal/poll"
)

// TestBFDInterop runs bgplbd's BFD (daemon/bfd) against each lab router's own BFD:
// FRR's bfdd and BIRD's protocol bfd. With spec.bfd on the BGPPeer, both ends report
// every node's session Up; cutting node3's link takes its BFD session and BGP session
// down at the router within a few detection times, and restoring it brings both back.
func TestBFDInterop(t *testing.T) {
	for _, r := range []string{lab.RouterFRR, lab.RouterBIRD} {
		t.Run(r, func(t *testing.T) { testBFDInterop(t, r) })
	}
}

func testBFDInterop(t *testing.T, routerName string) {
	ctx := context.Background()
	l, s := labsuite.Start(t, "/run/"+lab.Prefix+"-lab", false, func(o *lab.Options) { o.Router = routerName })
	peers, err := s.LB.BgplbV1alpha1().BGPPeers().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range peers.Items {
		p := &peers.Items[i]
		p.Spec.BFD = &lbv1.BFD{MinRxMs: ptr.To[int32](300), MinTxMs: ptr.To[int32](300), Multiplier: ptr.To[int32](3)}
		if _, err := s.LB.BgplbV1alpha1().BGPPeers().Update(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	nodes := map[string]string{} // node name -> fabric address
	for _, n := range l.Nodes {
		nodes[n.Name] = n.IPs[0].String()
	}
	routerUp := func(want map[string]bool) func() error {
		return func() error {
			got, err := routerBFD(ctx, l, routerName)
			if err != nil {
				return err
			}
			for name, addr := range nodes {
				if got[addr] != want[name] {
					return fmt.Errorf("router's BFD session with %s (%s) up=%v, want %v (all: %v)", name, addr, got[addr], want[name], got)
				}
			}
			return nil
		}
	}
	all := map[string]bool{"node1": true, "node2": true, "node3": true}
	poll.Eventually(t, 30*time.Second, every, "BFD Up at the router for every node", routerUp(all))
	poll.Eventually(t, 30*time.Second, every, "BFD Up in every BGPNodeState", func() error {
		for name := range nodes {
			st, err := s.LB.BgplbV1alpha1().BGPNodeStates().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if len(st.Status.Peers) == 0 || st.Status.Peers[0].BFD == nil || st.Status.Peers[0].BFD.State != "Up" {
				return fmt.Errorf("%s: %+v", name, st.Status.Peers)
			}
		}
		return nil
	})

	cut := time.Now()
	if err := l.SetNodeLink(ctx, "node3", false); err != nil {
		t.Fatal(err)
	}
	restored := false
	t.Cleanup(func() {
		if !restored {
			_ = l.SetNodeLink(context.Background(), "node3", true) // the lab is torn down next anyway
		}
	})
	poll.Eventually(t, 5*time.Second, every, "node3's BFD session down at the router", routerUp(map[string]bool{"node1": true, "node2": true}))
	t.Logf("%s: node3's BFD session down at the router %s after the cut", routerName, time.Since(cut).Round(time.Millisecond))
	poll.Eventually(t, 5*time.Second, every, "node3's BGP session down at the router", func() error {
		nbs, err := s.Router.Neighbors(ctx)
		if err != nil {
			return err
		}
		for _, nb := range nbs {
			if nb.Address.String() == nodes["node3"] && nb.State == "Established" {
				return fmt.Errorf("still Established")
			}
		}
		return nil
	})
	t.Logf("%s: node3's BGP session down at the router %s after the cut", routerName, time.Since(cut).Round(time.Millisecond))

	if err := l.SetNodeLink(ctx, "node3", true); err != nil {
		t.Fatal(err)
	}
	restored = true
	back := time.Now()
	poll.Eventually(t, 30*time.Second, every, "node3's BFD session back at the router", routerUp(all))
	s.WaitSessions(t)
	t.Logf("%s: node3's BFD and settled BGP session back %s after the link", routerName, time.Since(back).Round(time.Millisecond))
}

// routerBFD returns the router's BFD sessions: peer address -> up.
func routerBFD(ctx context.Context, l *lab.Lab, routerName string) (map[string]bool, error) {
	out := map[string]bool{}
	if routerName == lab.RouterBIRD {
		// birdc: "<address> <interface> <state> <since> <interval> <timeout>" per session.
		b, err := l.Birdc(ctx, "show bfd sessions")
		if err != nil {
			return nil, fmt.Errorf("birdc show bfd sessions: %w: %s", err, b)
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) >= 3 && strings.Count(f[0], ".") == 3 {
				out[f[0]] = f[2] == "Up"
			}
		}
		return out, nil
	}
	var peers []struct {
		Peer   string `json:"peer"`
		Status string `json:"status"`
	}
	if err := l.Router().JSON(ctx, "show bfd peers json", &peers); err != nil {
		return nil, err
	}
	for _, p := range peers {
		out[p.Peer] = p.Status == "up"
	}
	return out, nil
}
