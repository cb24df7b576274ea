package tests

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/conformance/router"
	"github.com/bgplb/bgplb/conformance/suite"
)

// Drain: a node drained under load like `kubectl drain` does it (cordon, then evict its
// pods through the Eviction API), then its bgplbd stopped with SIGTERM and started
// again (the node's shutdown for an upgrade), then the node uncordoned.
//
// Make-before-break: from the cordon on, the router must see the node's paths with the
// GRACEFUL_SHUTDOWN community (65535:0, RFC 8326) or the lowest local preference
// before it loses them — the ETP=Local path when the node's last local endpoint is
// evicted, the ETP=Cluster path when bgplbd stops — and not one request of a bounded
// client load (a new connection per request, to an ETP=Local and an ETP=Cluster VIP)
// may fail, from before the cordon until the restarted bgplbd announces again. After
// the uncordon every node announces both VIPs without the community.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "NodeDrain",
		ID:        "E8",
		Description: "a node cordoned and its pods evicted under load, then its bgplbd stopped (SIGTERM) and " +
			"started: the router sees the graceful-shutdown community before each withdrawal, 0 failed requests",
		Profile:  "LB-BGP",
		Features: []suite.Feature{suite.FeatureETPLocal, suite.FeatureETPCluster, suite.FeatureDaemonRestart},
		Needs:    []suite.Adapter{suite.AdapterClient, suite.AdapterFaults},
		Slow:     true,
		Test:     testNodeDrain,
	})
}

func testNodeDrain(t *testing.T, s *suite.Suite) {
	if s.Client == nil {
		t.Skip("this cluster provides no client (Suite.Client)")
	}
	if s.Faults == nil {
		t.Skip("this cluster provides no fault injection (Suite.Faults)")
	}
	if len(s.Nodes) < 2 {
		t.Skip("needs 2 nodes: one to drain, one to keep serving")
	}
	ctx := context.Background()
	ns := s.Namespace(t, "conf-drain")
	drained := s.Nodes[len(s.Nodes)-1]
	addr := drained.Addresses[0]
	var deployments []string
	for _, n := range s.Nodes {
		deployments = append(deployments, s.Backend(t, ns, "local", n.Name, 1), s.Backend(t, ns, "cluster", n.Name, 1))
	}
	for _, d := range deployments {
		s.WaitPods(t, ns, d, 1)
	}
	s.LBService(t, ns, "local", "local", suite.WithLocal)
	s.LBService(t, ns, "cluster", "cluster")
	local, cluster := s.WaitIngress(t, ns, "local"), s.WaitIngress(t, ns, "cluster")
	vips := []netip.Addr{local, cluster}
	names := map[netip.Addr]string{local: "ETP=Local", cluster: "ETP=Cluster"}
	for _, vip := range vips {
		s.EventuallyNextHops(t, vip, s.AllNodeAddrs())
	}
	var others []netip.Addr
	for _, a := range s.AllNodeAddrs() {
		if a != addr {
			others = append(others, a)
		}
	}

	watch := watchDrainPaths(s, vips, addr)
	defer watch.stop()
	load := suite.StartLoad(s, vips, 6, 2000000, 5*time.Minute)
	stopped := false
	defer func() {
		if !stopped {
			load.Stop()
		}
	}()
	t0 := time.Now()
	time.Sleep(2 * time.Second) // the load runs a while on the healthy cluster

	// kubectl drain: cordon, then evict the node's pods.
	t.Logf("cordon %s at +%s", drained.Name, time.Since(t0).Round(time.Millisecond))
	setUnschedulable(t, s, drained.Name, true)
	uncordoned := false
	t.Cleanup(func() {
		if !uncordoned {
			setUnschedulable(t, s, drained.Name, false)
		}
	})
	pods, err := s.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + drained.Name})
	if err != nil {
		t.Fatalf("list the pods on %s: %v", drained.Name, err)
	}
	for _, p := range pods.Items {
		ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace}}
		if err := s.Kube.PolicyV1().Evictions(p.Namespace).Evict(ctx, ev); err != nil {
			t.Fatalf("evict %s/%s: %v", p.Namespace, p.Name, err)
		}
	}
	t.Logf("evicted %d pods at +%s", len(pods.Items), time.Since(t0).Round(time.Millisecond))
	s.EventuallyNextHops(t, local, others)
	suite.Eventually(t, s.Timeouts.Converge, "graceful-shutdown marking on the cordoned node's ETP=Cluster path", func() error {
		if watch.marked(cluster).IsZero() {
			return fmt.Errorf("the router's path via %s for %s does not carry 65535:0", addr, cluster)
		}
		return nil
	})
	t.Logf("ETP=Local path withdrawn, ETP=Cluster path marked at +%s", time.Since(t0).Round(time.Millisecond))

	// The node shuts down for the upgrade: bgplbd stops (SIGTERM) and stays down a while
	// (the drain withdraws the ETP=Cluster path), then its supervisor starts it again.
	t.Logf("SIGTERM bgplbd on %s at +%s", drained.Name, time.Since(t0).Round(time.Millisecond))
	if err := s.Faults.SignalDaemon(ctx, drained.Name, syscall.SIGTERM, false); errors.Is(err, suite.ErrUnsupported) {
		t.Skipf("the Faults adapter cannot keep bgplbd down: %v", err)
	} else if err != nil {
		t.Fatalf("stop bgplbd on %s: %v", drained.Name, err)
	}
	down := true
	t.Cleanup(func() {
		if down { // never leave the node without its daemon
			if err := s.Faults.SignalDaemon(context.Background(), drained.Name, syscall.SIGKILL, true); err != nil {
				t.Errorf("restart bgplbd on %s: %v", drained.Name, err)
			}
		}
	})
	t.Logf("bgplbd on %s stopped at +%s", drained.Name, time.Since(t0).Round(time.Millisecond))
	s.EventuallyNextHops(t, cluster, others)
	suite.Eventually(t, s.Timeouts.Converge, "the router's poll to see the ETP=Cluster path gone", func() error {
		if watch.gone(cluster).IsZero() {
			return fmt.Errorf("no poll without the path via %s yet", addr)
		}
		return nil
	})
	if err := s.Faults.SignalDaemon(ctx, drained.Name, syscall.SIGKILL, true); err != nil {
		t.Fatalf("start bgplbd on %s: %v", drained.Name, err)
	}
	down = false
	t.Logf("bgplbd on %s started again at +%s", drained.Name, time.Since(t0).Round(time.Millisecond))
	s.WaitSessions(t)
	suite.Eventually(t, s.Timeouts.Converge, "the cordoned node's ETP=Cluster path back, marked", func() error {
		p, ok := watch.current(cluster)
		if !ok || !gracefulShutdownMarked(p) {
			return fmt.Errorf("path via %s for %s: %+v (present %v)", addr, cluster, p, ok)
		}
		return nil
	})

	// The drain is over: the load stops before the uncordon. When the node takes flows
	// again its next hop joins the router's ECMP group, and a router without resilient
	// next-hop groups (FRR on Linux) rehashes some established flows onto it; the node
	// has no state for them and the pod answers with a reset. That is the router's
	// rejoin, not the drain (docs/failover.md).
	reqs := load.Stop()
	stopped = true

	// Uncordon: the node takes new flows again, its pods are scheduled again.
	t.Logf("uncordon %s at +%s", drained.Name, time.Since(t0).Round(time.Millisecond))
	setUnschedulable(t, s, drained.Name, false)
	uncordoned = true
	for _, d := range deployments {
		s.WaitPods(t, ns, d, 1)
	}
	for _, vip := range vips {
		s.EventuallyNextHops(t, vip, s.AllNodeAddrs())
		suite.Eventually(t, s.Timeouts.Converge, "the uncordoned node's path without the graceful-shutdown marking", func() error {
			p, ok := watch.current(vip)
			if !ok || gracefulShutdownMarked(p) {
				return fmt.Errorf("path via %s for %s: %+v (present %v)", addr, vip, p, ok)
			}
			return nil
		})
	}
	watch.stop()
	for _, l := range watch.log {
		t.Log(l)
	}
	for _, vip := range vips {
		marked, gone := watch.marked(vip), watch.gone(vip)
		t.Logf("%s: path via %s first seen marked at %s, first seen withdrawn at %s", names[vip], addr,
			sinceOrNever(marked, t0), sinceOrNever(gone, t0))
		switch {
		case gone.IsZero():
			t.Errorf("%s: the router never lost the path via %s (the withdrawal was not observed)", names[vip], addr)
		case marked.IsZero() || !marked.Before(gone):
			t.Errorf("%s: the router lost the path via %s before it saw it with the graceful-shutdown marking", names[vip], addr)
		}
	}
	for vip, c := range tallyLoad(t, reqs, names, t0) {
		if c.Requests == 0 {
			t.Errorf("%s: the load completed no request", names[vip])
		}
		if c.Failed > 0 {
			t.Errorf("%s: %d of %d requests failed during the drain", names[vip], c.Failed, c.Requests)
		}
	}
}

// setUnschedulable cordons (true) or uncordons node, like kubectl cordon/uncordon.
func setUnschedulable(t *testing.T, s *suite.Suite, node string, on bool) {
	t.Helper()
	suite.Eventually(t, 10*time.Second, fmt.Sprintf("set %s unschedulable=%v", node, on), func() error {
		n, err := s.Kube.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		n.Spec.Unschedulable = on
		_, err = s.Kube.CoreV1().Nodes().Update(context.Background(), n, metav1.UpdateOptions{})
		return err
	})
}

// gracefulShutdownMarked reports whether p carries the GRACEFUL_SHUTDOWN community
// (FRR prints it by name). The local preference alone proves nothing: an adapter
// reports 0 when the router shows none (eBGP).
func gracefulShutdownMarked(p router.Path) bool {
	return slices.Contains(p.Communities, "65535:0") || slices.Contains(p.Communities, "graceful-shutdown")
}

func sinceOrNever(at, t0 time.Time) string {
	if at.IsZero() {
		return "never"
	}
	return "+" + at.Sub(t0).Round(time.Millisecond).String()
}

// drainPathWatch polls the router's paths of some VIPs and records, per VIP, when a
// path via one next hop was first seen marked for graceful shutdown and when a poll
// first found no path via it. A poll takes time: "marked" is the end of the first poll
// that showed the marking, "gone" the start of the first that showed no path, so
// marked before gone proves the order.
type drainPathWatch struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	first map[netip.Addr]time.Time   // vip → first marked
	lost  map[netip.Addr]time.Time   // vip → first without the path
	last  map[netip.Addr]router.Path // vip → the path in the last poll
	has   map[netip.Addr]bool        // vip → the last poll had the path
	log   []string                   // changes seen, for the test log
	state map[netip.Addr]string      // vip → the last state logged
}

func watchDrainPaths(s *suite.Suite, vips []netip.Addr, addr netip.Addr) *drainPathWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &drainPathWatch{cancel: cancel, done: make(chan struct{}), first: map[netip.Addr]time.Time{},
		lost: map[netip.Addr]time.Time{}, last: map[netip.Addr]router.Path{}, has: map[netip.Addr]bool{},
		state: map[netip.Addr]string{}}
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			for _, vip := range vips {
				start := time.Now()
				qctx, c := context.WithTimeout(ctx, 2*time.Second)
				paths, err := s.Router.Paths(qctx, suite.HostPrefix(vip))
				c()
				end := time.Now()
				if err != nil {
					continue
				}
				i := slices.IndexFunc(paths, func(p router.Path) bool { return p.NextHop == addr })
				w.mu.Lock()
				state := "absent"
				if i >= 0 {
					state = fmt.Sprintf("communities %v local-pref %d multipath %v", paths[i].Communities, paths[i].LocalPref, paths[i].Multipath)
				}
				if prev, seen := w.state[vip]; !seen || prev != state {
					w.log = append(w.log, fmt.Sprintf("%s %s via %s: %s", end.Format("15:04:05.000"), vip, addr, state))
					w.state[vip] = state
				}
				w.has[vip] = i >= 0
				if i < 0 {
					if w.lost[vip].IsZero() {
						w.lost[vip] = start
					}
				} else {
					w.last[vip] = paths[i]
					if gracefulShutdownMarked(paths[i]) && w.first[vip].IsZero() {
						w.first[vip] = end
					}
				}
				w.mu.Unlock()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return w
}

func (w *drainPathWatch) marked(vip netip.Addr) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.first[vip]
}

func (w *drainPathWatch) gone(vip netip.Addr) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lost[vip]
}

// current returns the path via the watched next hop in the last poll, if it had one.
func (w *drainPathWatch) current(vip netip.Addr) (router.Path, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last[vip], w.has[vip]
}

func (w *drainPathWatch) stop() {
	w.cancel()
	<-w.done
}
