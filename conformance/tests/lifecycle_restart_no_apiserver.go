package tests

import (
	"context"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/bgplb/bgplb/conformance/suite"
)

// Issue 17: a bgplbd restarted while the API server is unavailable announces what its
// predecessor announced (its state file) instead of blocking: the router never loses the
// route, the session comes back and the route is no longer stale (the daemon sent it and
// its End-of-RIB, not just the router's graceful-restart timer keeping it), the VIP keeps
// answering; once the API server is back the daemon catches up (a new Service is
// announced from the node).
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "LifecycleRestartWithoutAPIServer",
		Description: "API server paused, bgplbd on node1 restarted: the VIP's route never leaves the router's FIB, " +
			"the session comes back and re-sends it (not stale), requests succeed throughout; the API server " +
			"resumed, a new Service is announced from node1",
		Profile:  "LB-BGP",
		Features: []suite.Feature{suite.FeatureGracefulRestart, suite.FeatureDaemonRestart, suite.FeatureETPLocal},
		Slow:     true,
		Test:     testRestartWithoutAPIServer,
	})
}

func testRestartWithoutAPIServer(t *testing.T, s *suite.Suite) {
	if s.Faults == nil || s.ControlPlaneFaults == nil {
		t.Skip("this cluster provides no daemon restart or API server fault injection (Suite.Faults, Suite.ControlPlaneFaults)")
	}
	ctx := context.Background()
	ns := s.Namespace(t, "conf-restart-noapi")
	d := s.Backend(t, ns, "web", "node1", 1)
	s.LBService(t, ns, "web", "web", suite.WithLocal)
	vip := s.WaitIngress(t, ns, "web")
	s.WaitPods(t, ns, d, 1)
	n1 := s.NodeAddr("node1")
	s.EventuallyNextHops(t, vip, []netip.Addr{n1})
	suite.Eventually(t, s.Timeouts.Converge, "first answer from "+vip.String(), func() error {
		_, err := s.HTTPGet(ctx, vip, 80, "/hostname")
		return err
	})
	// The daemon saves its state a second after a change: let it.
	s.ConsistentlyNextHops(t, vip, []netip.Addr{n1}, 3*time.Second)

	resume := pauseAPIServer(ctx, t, s)

	before := establishedSince(t, s, n1)
	t.Log("restart bgplbd on node1")
	if err := s.Faults.SignalDaemon(ctx, "node1", syscall.SIGTERM, true); err != nil {
		t.Fatalf("restart bgplbd on node1: %v", err)
	}
	restarted := time.Now()
	// Until the new session is up and its route fresh: the route stays in the RIB and
	// FIB, and the VIP answers. The daemon waits 10 s for the API server before it uses
	// its state file; 2T on top of that is the bound.
	bound := 10*time.Second + 2*s.Timeouts.Converge
	failures, requests := 0, 0
	for {
		if nh, err := s.RIBNextHops(vip); err != nil || !slices.Equal(nh, []netip.Addr{n1}) {
			t.Fatalf("RIB of %s is %v (%v), want [%s]", vip, nh, err, n1)
		}
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		fib, err := s.Router.FIBNextHops(fctx, suite.HostPrefix(vip))
		cancel()
		if err != nil || !slices.Equal(fib, []netip.Addr{n1}) {
			t.Fatalf("FIB of %s is %v (%v), want [%s]", vip, fib, err, n1)
		}
		requests++
		if _, err := s.HTTPGet(ctx, vip, 80, "/hostname"); err != nil {
			failures++
			t.Logf("request %d: %v", requests, err)
		}
		if since := establishedSince(t, s, n1); !since.IsZero() && since.After(before) && fresh(t, s, vip) {
			t.Logf("new session from node1 with a fresh route %s after the restart", time.Since(restarted).Round(time.Millisecond))
			break
		}
		if time.Since(restarted) > bound {
			t.Fatalf("no new session from node1 re-sending %s within %s of the restart: the daemon does not announce without the API server", vip, bound)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if failures > 0 {
		t.Errorf("%d of %d requests to %s failed while the daemon restarted without the API server", failures, requests, vip)
	}
	s.ConsistentlyNextHops(t, vip, []netip.Addr{n1}, 5*time.Second)

	t.Log("resume the API server: the daemon catches up")
	resume()
	d2 := s.Backend(t, ns, "late", "node1", 1)
	s.LBService(t, ns, "late", "late", suite.WithLocal)
	late := s.WaitIngress(t, ns, "late")
	s.WaitPods(t, ns, d2, 1)
	s.EventuallyNextHops(t, late, []netip.Addr{n1})
	s.EventuallyNextHops(t, vip, []netip.Addr{n1})
	suite.Eventually(t, s.Timeouts.Converge, "answer from "+late.String(), func() error {
		_, err := s.HTTPGet(ctx, late, 80, "/hostname")
		return err
	})
}

// fresh reports whether the router holds vip with no stale path.
func fresh(t *testing.T, s *suite.Suite, vip netip.Addr) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	paths, err := s.Router.Paths(ctx, suite.HostPrefix(vip))
	if err != nil || len(paths) == 0 {
		return false
	}
	for _, p := range paths {
		if p.Stale {
			return false
		}
	}
	return true
}
