package tests

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/bgplb/bgplb/conformance/suite"
)

// A4 (IPAMReleaseOnTypeChange): LoadBalancer → ClusterIP empties the ingress and the
// router's RIB for the VIP; another Service can then get that VIP.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName:   "IPAMReleaseOnTypeChange",
		ID:          "A4",
		Description: "LoadBalancer → ClusterIP empties the ingress and the router's RIB for the VIP; another Service can then get that VIP",
		Profile:     "LB-IPAM",
		Features:    []suite.Feature{suite.FeatureIPRelease},
		Test:        testIPAMReleaseTypeChange,
	})
}

func testIPAMReleaseTypeChange(t *testing.T, s *suite.Suite) {
	ns := s.Namespace(t, "conf-ipam-release")
	vip := backedService(t, s, ns, "first", "web")

	t.Logf("first (%s) → ClusterIP", vip)
	s.UpdateService(t, ns, "first", suite.ToType(corev1.ServiceTypeClusterIP))
	s.WaitIngressIs(t, ns, "first")
	s.EventuallyNextHops(t, vip, nil)

	t.Logf("second requests %s", vip)
	s.LBService(t, ns, "second", "web", suite.WithLoadBalancerIP(vip.String()))
	s.WaitIngressIs(t, ns, "second", vip)
	s.EventuallyNextHops(t, vip, s.AllNodeAddrs())
	s.WaitIngressIs(t, ns, "first")
}
