package tests

import (
	"testing"

	"github.com/bgplb/bgplb/conformance/suite"
	lbv1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// C10 (BGPSharedVIP): two Services sharing V: deleting one leaves the router's RIB for V
// unchanged, deleting the second withdraws V.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "BGPSharedVIP",
		ID:        "C10",
		Description: "two Services sharing V: deleting one leaves the router's RIB for V unchanged, deleting the " +
			"second withdraws V",
		Profile:  "LB-BGP",
		Features: []suite.Feature{suite.FeatureSharedIP, suite.FeatureETPCluster},
		Test:     testBGPSharedVIP,
	})
}

func testBGPSharedVIP(t *testing.T, s *suite.Suite) {
	ns := s.Namespace(t, "conf-shared-vip")
	key := suite.WithAnnotations(map[string]string{lbv1.AnnotationSharingKey: "c10"})
	v := backedService(t, s, ns, "http", "web", key, suite.WithPort(80))
	s.LBService(t, ns, "alt", "web", key, suite.WithPort(8081))
	s.WaitIngressIs(t, ns, "alt", v)
	all := s.AllNodeAddrs()
	s.EventuallyNextHops(t, v, all)

	t.Logf("delete one of the two Services sharing %s: route unchanged", v)
	s.DeleteService(t, ns, "http")
	s.ConsistentlyNextHops(t, v, all, s.Timeouts.Consistently)
	s.WaitIngressIs(t, ns, "alt", v)

	t.Log("delete the second: withdrawn")
	s.DeleteService(t, ns, "alt")
	s.EventuallyNextHops(t, v, nil)
}
