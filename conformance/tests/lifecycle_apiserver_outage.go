package tests

import (
	"context"
	"testing"
	"time"

	"github.com/bgplb/bgplb/conformance/suite"
)

// apiOutage is how long E5 keeps the API server away (docs/conformance.md: 60 s).
const apiOutage = 60 * time.Second

// E5: the API server unavailable for 60 s: the advertisements stay as they were the
// whole time; a change made meanwhile (a backend turning unready, which nobody can
// report) converges within T once the API server is back.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "LifecycleAPIServerOutage",
		ID:        "E5",
		Description: "the API server paused for 60 s: an ETP=Local VIP's next hops (node1, node2) stay throughout " +
			"although node2's backend turns unready meanwhile; once the API server is back, node2 is withdrawn within T",
		Needs:    []suite.Adapter{suite.AdapterControlPlaneFaults, suite.AdapterClient},
		Profile:  "LB-BGP",
		Features: []suite.Feature{suite.FeatureETPLocal, suite.FeatureEndpointReadines},
		Slow:     true,
		Test:     testAPIServerOutage,
	})
}

func testAPIServerOutage(t *testing.T, s *suite.Suite) {
	if s.ControlPlaneFaults == nil {
		t.Skip("this cluster provides no way to make the API server unavailable (Suite.ControlPlaneFaults)")
	}
	ctx := context.Background()
	ns := s.Namespace(t, "conf-apiserver-outage")
	d1 := s.Backend(t, ns, "web", s.NodeName(1), 1)
	d2 := s.Backend(t, ns, "web", s.NodeName(2), 1)
	s.LBService(t, ns, "web", "web", suite.WithLocal)
	vip := s.WaitIngress(t, ns, "web")
	s.WaitPods(t, ns, d1, 1)
	pod2 := s.WaitPods(t, ns, d2, 1)[0]
	both := s.NodeAddrs(s.NodeName(1), s.NodeName(2))
	s.EventuallyNextHops(t, vip, both)

	resume := pauseAPIServer(ctx, t, s)
	start := time.Now()
	// The change nobody can report: node2's backend fails its readiness probe.
	if err := s.SetReady(ctx, mustAddr(t, pod2.Status.PodIP), false); err != nil {
		t.Fatalf("make %s unready: %v", pod2.Name, err)
	}
	s.ConsistentlyNextHops(t, vip, both, apiOutage-time.Since(start))

	t.Logf("resume the API server after %s", time.Since(start).Round(time.Second))
	resume()
	back := time.Now()
	s.EventuallyNextHops(t, vip, s.NodeAddrs(s.NodeName(1)))
	t.Logf("node2 withdrawn %s after the API server came back", time.Since(back).Round(time.Millisecond))
}
