package tests

import (
	"testing"

	"github.com/bgplb/bgplb/conformance/suite"
)

// C3 (BGPLocalZeroEndpoints): ETP=Local with no endpoints: the VIP is allocated but never
// announced.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName:   "BGPLocalZeroEndpoints",
		ID:          "C3",
		Description: "ETP=Local with no endpoints: the VIP is allocated but never announced",
		Profile:     "LB-BGP",
		Features:    []suite.Feature{suite.FeatureETPLocal, suite.FeatureWithdrawNoEP},
		Test: func(t *testing.T, s *suite.Suite) {
			ns := s.Namespace(t, "conf-local-zero")
			s.Backend(t, ns, "idle", s.NodeName(1), 0)
			s.LBService(t, ns, "idle", "idle", suite.WithLocal)
			vip := s.WaitIngress(t, ns, "idle")
			s.ConsistentlyNextHops(t, vip, nil, s.Timeouts.Consistently)
		},
	})
}
