package tests

import (
	"net/netip"
	"testing"
	"time"

	"github.com/bgplb/bgplb/conformance/suite"
)

// D7: five rolling restarts of the backends under a steady load of new connections,
// with ETP=Cluster and ETP=Local: no request fails.
//
// Each node runs one backend per Service (replicas 1, the suite's rolling strategy:
// maxSurge 25% rounds up to one new pod, maxUnavailable 25% rounds down to none), so a
// restart starts the new pod, waits for it to be ready, then terminates the old one,
// which stops being ready at once and keeps serving for its shutdown delay. A node
// with ETP=Local therefore always has a ready endpoint and never leaves the router's
// ECMP set: the router takes no part in the rollout, every request either reaches a
// ready pod or one still serving. A failure is bgplb's (an endpoint removed from the
// datapath too late, or a flow sent to a pod that no longer serves) and fails the
// test; each failed request is logged with its time relative to the rollout steps.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "RollingUpdateNoDisruption",
		ID:        "D7",
		Description: "5 rollout restarts of the backends under load (new connection per request), " +
			"ETP=Cluster and ETP=Local: 0 failed requests",
		Profile:  "LB-DATAPATH",
		Features: []suite.Feature{suite.FeatureTCPViaVIP, suite.FeatureETPLocal, suite.FeatureETPCluster},
		Needs:    []suite.Adapter{suite.AdapterClient},
		Slow:     true,
		Test:     testRollingUpdate,
	})
}

// rollingRestarts is how many times D7 restarts every backend.
const rollingRestarts = 5

func testRollingUpdate(t *testing.T, s *suite.Suite) {
	if s.Client == nil {
		t.Skip("this cluster provides no client (Suite.Client)")
	}
	ns := s.Namespace(t, "conf-rolling")
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
	for _, vip := range []netip.Addr{local, cluster} {
		s.EventuallyNextHops(t, vip, s.AllNodeAddrs())
	}
	names := map[netip.Addr]string{local: "ETP=Local", cluster: "ETP=Cluster"}

	load := suite.StartLoad(s, []netip.Addr{local, cluster}, 6, 2000000, 10*time.Minute)
	stopped := false
	defer func() {
		if !stopped {
			load.Stop()
		}
	}()
	t0 := time.Now()
	time.Sleep(2 * time.Second) // the load runs a while on the settled backends
	for round := 1; round <= rollingRestarts; round++ {
		start := time.Now()
		for _, d := range deployments {
			s.RolloutRestart(t, ns, d)
		}
		for _, d := range deployments {
			s.WaitRollout(t, ns, d, 1)
		}
		for _, vip := range []netip.Addr{local, cluster} {
			s.EventuallyNextHops(t, vip, s.AllNodeAddrs())
		}
		t.Logf("restart %d: +%s to +%s", round, start.Sub(t0).Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	}
	time.Sleep(2 * time.Second) // requests sent to the last terminating pods have ended
	reqs := load.Stop()
	stopped = true
	for vip, c := range tallyLoad(t, reqs, names, t0) {
		if c.Requests == 0 {
			t.Errorf("%s: the load completed no request", names[vip])
		}
		if c.Failed > 0 {
			t.Errorf("%s: %d of %d requests failed during %d rolling restarts", names[vip], c.Failed, c.Requests, rollingRestarts)
		}
	}
}
