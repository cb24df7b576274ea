package tests

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/bgplb/bgplb/conformance/suite"
)

// E2 (BGPGracefulRestart): bgplbd killed with SIGKILL and restarted, graceful restart on:
// the node's route stays (maybe stale) throughout and the session comes back.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "BGPGracefulRestart",
		ID:        "E2",
		Description: "bgplbd killed with SIGKILL and restarted, graceful restart on: the node's route " +
			"stays (maybe stale) throughout and the session comes back",
		Needs:    []suite.Adapter{suite.AdapterFaults},
		Profile:  "LB-BGP",
		Features: []suite.Feature{suite.FeatureGracefulRestart, suite.FeatureDaemonRestart},
		Slow:     true,
		Test:     testGracefulRestart,
	})
}

func testGracefulRestart(t *testing.T, s *suite.Suite) {
	if s.Faults == nil {
		t.Skip("this cluster provides no fault injection (Suite.Faults)")
	}
	ctx := context.Background()
	ns := s.Namespace(t, "conf-gr")
	d := s.Backend(t, ns, "gr", s.NodeName(1), 1)
	s.LBService(t, ns, "gr", "gr", suite.WithLocal)
	vip := s.WaitIngress(t, ns, "gr")
	s.WaitPods(t, ns, d, 1)
	n1 := s.NodeAddr(s.NodeName(1))
	s.EventuallyNextHops(t, vip, []netip.Addr{n1})

	before := establishedSince(t, s, n1)
	if err := s.Faults.SignalDaemon(ctx, s.NodeName(1), syscall.SIGKILL, true); err != nil {
		t.Fatalf("kill and restart bgplbd on node1: %v", err)
	}
	// The route must never leave the RIB, while the session goes down and comes back.
	deadline := time.Now().Add(s.Timeouts.Converge * 2)
	for {
		nh, err := s.RIBNextHops(vip)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(nh, n1) {
			t.Fatalf("node1's route to %s was withdrawn during the graceful restart (RIB %v)", vip, nh)
		}
		since := establishedSince(t, s, n1)
		if !since.IsZero() && since.After(before) {
			break // a new session is up
		}
		if time.Now().After(deadline) {
			t.Fatalf("the session to node1 did not come back within %s", s.Timeouts.Converge*2)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.ConsistentlyNextHops(t, vip, []netip.Addr{n1}, 5*time.Second)
	paths, err := s.Router.Paths(ctx, suite.HostPrefix(vip))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if p.Stale {
			t.Errorf("path via %s is still stale after the restart: %+v", p.NextHop, p)
		}
	}
}

// establishedSince returns when the router's session with addr last became
// Established (zero when it is not Established).
func establishedSince(t *testing.T, s *suite.Suite, addr netip.Addr) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nbs, err := s.Router.Neighbors(ctx)
	if err != nil {
		t.Fatalf("read router neighbours: %v", err)
	}
	for _, n := range nbs {
		if n.Address == addr {
			return n.EstablishedSince
		}
	}
	t.Logf("%s", fmt.Sprintf("router has no session with %s", addr))
	return time.Time{}
}
