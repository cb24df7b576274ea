package tests

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/bgplb/bgplb/conformance/suite"
)

// C11 (BGPNoSessionFlaps): creating and deleting 20 unrelated Services (announced, then
// withdrawn) leaves every session up: connectionsDropped and the established time unchanged
// on every peer.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "BGPNoSessionFlaps",
		ID:        "C11",
		Description: "creating and deleting 20 unrelated Services (announced, then withdrawn) leaves every " +
			"session up: connectionsDropped and the established time unchanged on every peer",
		Profile:  "LB-BGP",
		Features: []suite.Feature{suite.FeatureNoSessionFlaps},
		Test:     testBGPNoFlaps,
	})
}

func testBGPNoFlaps(t *testing.T, s *suite.Suite) {
	ns := s.Namespace(t, "conf-no-flaps")
	d := s.Backend(t, ns, "web", s.Nodes[0].Name, 1)
	s.WaitPods(t, ns, d, 1)
	before := s.RequireSessions(t)
	all := s.AllNodeAddrs()

	const n = 20
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("churn-%02d", i)
		s.LBService(t, ns, names[i], "web")
	}
	vips := make([]netip.Addr, n)
	for i, name := range names {
		vips[i] = s.WaitIngress(t, ns, name)
	}
	for _, v := range vips {
		s.EventuallyNextHops(t, v, all)
	}
	if err := s.SessionsUnchanged(ctxBG, before); err != nil {
		t.Fatalf("after announcing %d VIPs: %v", n, err)
	}
	for _, name := range names {
		s.DeleteService(t, ns, name)
	}
	for _, v := range vips {
		s.EventuallyNextHops(t, v, nil)
	}
	if err := s.SessionsUnchanged(ctxBG, before); err != nil {
		t.Fatalf("after withdrawing them: %v", err)
	}
}
