package tests

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/conformance/suite"
	lbv1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// A8 (IPAMPoolShrinkDelete): removing the range that holds V moves the Service to the
// pool's remaining range (V leaves the router, the new IP appears); deleting the pool
// clears the ingress and the route.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "IPAMPoolShrinkDelete",
		ID:        "A8",
		Description: "removing the range that holds V moves the Service to the pool's remaining range (V leaves " +
			"the router, the new IP appears); deleting the pool clears the ingress and the route",
		Profile:  "LB-IPAM",
		Features: []suite.Feature{suite.FeatureIPv4Pool, suite.FeatureIPRelease},
		Test:     testIPAMPoolShrink,
	})
}

func testIPAMPoolShrink(t *testing.T, s *suite.Suite) {
	ns := s.Namespace(t, "conf-ipam-shrink")
	lo, hi := vipAt(s, 136), vipAt(s, 137)
	s.Pool(t, "conf-a8", []lbv1.IPBlock{rangeAt(s, 136, 136), rangeAt(s, 137, 137)})
	v := backedService(t, s, ns, "web", "web", suite.WithAnnotations(map[string]string{lbv1.AnnotationPool: "conf-a8"}))
	other := hi
	switch v {
	case lo:
	case hi:
		other = lo
	default:
		t.Fatalf("got %s, outside pool conf-a8 (%s-%s)", v, lo, hi)
	}

	t.Logf("remove the block holding %s: the Service moves to %s", v, other)
	s.UpdatePool(t, "conf-a8", func(p *lbv1.LoadBalancerIPPool) {
		p.Spec.Blocks = []lbv1.IPBlock{{Start: other.String(), Stop: other.String()}}
	})
	s.WaitIngressIs(t, ns, "web", other)
	s.EventuallyNextHops(t, v, nil)
	s.EventuallyNextHops(t, other, s.AllNodeAddrs())

	t.Log("delete the pool: no ingress, no route")
	s.DeletePool(t, "conf-a8")
	s.WaitIngressIs(t, ns, "web")
	s.EventuallyNextHops(t, other, nil)
	cond := s.WaitAllocCondition(t, ns, "web", metav1.ConditionFalse, "")
	t.Logf("after the pool is gone: %s: %s", cond.Reason, cond.Message)
}
