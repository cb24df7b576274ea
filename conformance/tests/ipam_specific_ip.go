package tests

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/conformance/suite"
	lbv1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// A2 (IPAMSpecificIP): spec.loadBalancerIP and the bgplb.io/load-balancer-ips annotation
// get exactly the requested in-pool IP; an IP outside every pool gets no ingress and reason
// RequestedIPUnavailable.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "IPAMSpecificIP",
		ID:        "A2",
		Description: "spec.loadBalancerIP and the bgplb.io/load-balancer-ips annotation get exactly the requested " +
			"in-pool IP; an IP outside every pool gets no ingress and reason RequestedIPUnavailable",
		Profile:  "LB-IPAM",
		Features: []suite.Feature{suite.FeatureSpecificIP},
		Test:     testIPAMSpecificIP,
	})
}

func testIPAMSpecificIP(t *testing.T, s *suite.Suite) {
	ns := s.Namespace(t, "conf-ipam-specific")
	// autoAssign false: only Services requesting its addresses get them.
	s.Pool(t, "conf-a2", []lbv1.IPBlock{cidrAt(s, 188, 30)})
	byField, byAnnotation, outside := vipAt(s, 189), vipAt(s, 190), vipAt(s, 254)

	s.LBService(t, ns, "by-field", "x", suite.WithLoadBalancerIP(byField.String()))
	s.LBService(t, ns, "by-annotation", "x", suite.WithAnnotations(map[string]string{
		lbv1.AnnotationLoadBalancerIPs: byAnnotation.String()}))
	s.WaitIngressIs(t, ns, "by-field", byField)
	s.WaitIngressIs(t, ns, "by-annotation", byAnnotation)
	s.WaitAllocCondition(t, ns, "by-field", metav1.ConditionTrue, lbv1.ReasonAllocated)
	s.WaitAllocCondition(t, ns, "by-annotation", metav1.ConditionTrue, lbv1.ReasonAllocated)

	t.Logf("request %s, outside every pool", outside)
	s.RequireNoPool(t, outside)
	s.LBService(t, ns, "outside", "x", suite.WithLoadBalancerIP(outside.String()))
	cond := s.WaitAllocCondition(t, ns, "outside", metav1.ConditionFalse, lbv1.ReasonRequestedIPUnavailable)
	t.Logf("condition: %s: %s", cond.Reason, cond.Message)
	s.WaitServiceEvent(t, ns, "outside", lbv1.ReasonRequestedIPUnavailable)
	s.ConsistentlyNoIngress(t, ns, "outside", s.Timeouts.Consistently)
	// The requested in-pool Services kept their addresses meanwhile.
	s.WaitIngressIs(t, ns, "by-field", byField)
	s.WaitIngressIs(t, ns, "by-annotation", byAnnotation)
}
