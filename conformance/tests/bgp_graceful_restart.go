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
		Description: "bgplbd killed with SIGKILL and restarted with the default settings (graceful restart " +
			"on) under load: the node's route stays (maybe stale) throughout, the session comes back, no request fails",
		Needs:    []suite.Adapter{suite.AdapterFaults, suite.AdapterClient},
		Profile:  "LB-BGP",
		Features: []suite.Feature{suite.FeatureGracefulRestart, suite.FeatureDaemonRestart},
		Slow:     true,
		Test:     testGracefulRestart,
	})
}

// testGracefulRestart is E2 with the BGPPeers as the suite configures them (graceful
// restart is the API's default): a bounded client load, a new connection per request,
// runs through the kill and the restart and must see no failed request, while the
// router never loses the node's route.
func testGracefulRestart(t *testing.T, s *suite.Suite) {
	if s.Faults == nil {
		t.Skip("this cluster provides no fault injection (Suite.Faults)")
	}
	if s.Client == nil {
		t.Skip("this cluster provides no client (Suite.Client)")
	}
	ctx := context.Background()
	ns := s.Namespace(t, "conf-gr")
	d := s.Backend(t, ns, "gr", s.NodeName(1), 1)
	s.LBService(t, ns, "gr", "gr", suite.WithLocal)
	vip := s.WaitIngress(t, ns, "gr")
	s.WaitPods(t, ns, d, 1)
	n1 := s.NodeAddr(s.NodeName(1))
	s.EventuallyNextHops(t, vip, []netip.Addr{n1})

	load := suite.StartLoad(s, []netip.Addr{vip}, 4, 200000, 2*time.Minute)
	stopped := false
	defer func() {
		if !stopped {
			load.Stop()
		}
	}()
	t0 := time.Now()
	time.Sleep(2 * time.Second) // the load runs a while before the kill
	before := establishedSince(t, s, n1)
	t.Logf("SIGKILL bgplbd on %s at +%s", s.NodeName(1), time.Since(t0).Round(time.Millisecond))
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
	t.Logf("session with %s back at +%s", s.NodeName(1), time.Since(t0).Round(time.Millisecond))
	s.ConsistentlyNextHops(t, vip, []netip.Addr{n1}, 5*time.Second)
	reqs := load.Stop()
	stopped = true
	tally := tallyLoad(t, reqs, map[netip.Addr]string{vip: "gr"}, t0)[vip]
	if tally.Requests == 0 {
		t.Errorf("the load completed no request")
	}
	if tally.Failed > 0 {
		t.Errorf("%d of %d requests failed across the daemon's restart", tally.Failed, tally.Requests)
	}
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
