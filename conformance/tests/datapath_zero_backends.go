package tests

import (
	"context"
	"testing"
	"time"

	"github.com/bgplb/bgplb/conformance/suite"
)

// D4: a VIP whose Deployment is scaled to zero (ETP=Local) is withdrawn and a new
// connection from the client fails within the request timeout; scaled back to one, the
// VIP answers again within T.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "DatapathZeroBackends",
		ID:        "D4",
		Description: "ETP=Local scaled to 0: the route is withdrawn and connections from the client fail within " +
			"the request timeout; scaled to 1: requests succeed within T",
		Profile:  "LB-DATAPATH",
		Features: []suite.Feature{suite.FeatureTCPViaVIP, suite.FeatureZeroEndpoints, suite.FeatureETPLocal},
		Test:     testDatapathZeroBackends,
	})
}

func testDatapathZeroBackends(t *testing.T, s *suite.Suite) {
	ctx := context.Background()
	ns := s.Namespace(t, "conf-dp-zero")
	d := s.Backend(t, ns, "zero", s.NodeName(1), 1)
	s.LBService(t, ns, "zero", "zero", suite.WithLocal)
	vip := s.WaitIngress(t, ns, "zero")
	s.WaitPods(t, ns, d, 1)
	s.EventuallyNextHops(t, vip, s.NodeAddrs(s.NodeName(1)))
	suite.Eventually(t, s.Timeouts.Converge, "first answer from "+vip.String(), func() error {
		_, err := s.HTTPGet(ctx, vip, 80, "/hostname")
		return err
	})

	t.Log("scale to 0: withdrawn, and connections fail")
	s.Scale(t, ns, d, 0)
	s.EventuallyNextHops(t, vip, nil)
	// The router answers the first with ICMP net unreachable; its ICMP rate limit
	// turns the next ones into timeouts, so a few attempts suffice.
	const attempts = 3
	for i := 0; i < attempts; i++ {
		start := time.Now()
		body, err := s.HTTPGet(ctx, vip, 80, "/hostname")
		took := time.Since(start)
		if err == nil {
			t.Fatalf("attempt %d: %s answered %q with zero backends", i, vip, body)
		}
		// HTTPGet bounds every request by the request timeout; a little slack for the
		// context's own scheduling.
		if took > s.Timeouts.Request+time.Second {
			t.Fatalf("attempt %d: failing took %s, more than the request timeout %s", i, took, s.Timeouts.Request)
		}
		if i == 0 || i == attempts-1 {
			t.Logf("attempt %d failed after %s: %v", i, took.Round(time.Millisecond), err)
		}
	}

	t.Log("scale to 1: announced and answering again")
	s.Scale(t, ns, d, 1)
	s.EventuallyNextHops(t, vip, s.NodeAddrs(s.NodeName(1)))
	suite.Eventually(t, s.Timeouts.Converge, "answer from "+vip.String()+" after scaling up", func() error {
		_, err := s.HTTPGet(ctx, vip, 80, "/hostname")
		return err
	})
}
