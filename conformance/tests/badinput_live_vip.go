package tests

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/conformance/suite"
	lbv1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// G9 (BadInputKeepsLiveVIP): a Service holding a VIP keeps it (status and router FIB) when
// its requested-IP annotation, pool annotation or requested IP (outside every pool) turns
// bad, with IPAllocated=False and the reason; a new Service does not get that VIP; fixing
// the request restores IPAllocated=True with the same VIP.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "BadInputKeepsLiveVIP",
		ID:        "G9",
		Description: "a Service holding a VIP keeps it (status and router FIB) when its requested-IP annotation, " +
			"pool annotation or requested IP (outside every pool) turns bad, with IPAllocated=False and the reason; " +
			"a new Service does not get that VIP; fixing the request restores IPAllocated=True with the same VIP",
		Profile:  "LB-IPAM",
		Features: []suite.Feature{suite.FeatureSpecificIP},
		Test:     testBadInputKeepsLiveVIP,
	})
}

func testBadInputKeepsLiveVIP(t *testing.T, s *suite.Suite) {
	ns := s.Namespace(t, "conf-live-vip")
	vip := backedService(t, s, ns, "live", "web")
	allNodes := s.AllNodeAddrs()
	outside := vipAt(s, 254)
	s.RequireNoPool(t, outside)

	cases := []struct {
		name   string
		key    string
		value  string
		reason string
	}{
		{"requested-IP annotation typo", lbv1.AnnotationLoadBalancerIPs, vip.String() + ".1", lbv1.ReasonInvalidRequest},
		{"pool annotation typo", lbv1.AnnotationPool, "conf-g9-no-such-pool", lbv1.ReasonInvalidRequest},
		{"requested IP outside every pool", lbv1.AnnotationLoadBalancerIPs, outside.String(), lbv1.ReasonRequestedIPUnavailable},
	}
	for i, c := range cases {
		s.UpdateService(t, ns, "live", func(svc *corev1.Service) {
			if svc.Annotations == nil {
				svc.Annotations = map[string]string{}
			}
			svc.Annotations[c.key] = c.value
		})
		cond := s.WaitAllocCondition(t, ns, "live", metav1.ConditionFalse, c.reason)
		t.Logf("%s: %s: %s", c.name, cond.Reason, cond.Message)
		// A new Service now must not get the live VIP.
		other := fmt.Sprintf("other-%d", i)
		s.LBService(t, ns, other, "web")
		if got := s.WaitIngress(t, ns, other); got == vip {
			t.Fatalf("%s: new Service %s got the live VIP %s", c.name, other, vip)
		}
		suite.Consistently(t, s.Timeouts.Consistently, c.name+": the live VIP stays in status and at the router", func() error {
			return goodUndisturbed(s, ns, "live", vip, allNodes)
		})
		s.UpdateService(t, ns, "live", func(svc *corev1.Service) { delete(svc.Annotations, c.key) })
		s.WaitAllocCondition(t, ns, "live", metav1.ConditionTrue, lbv1.ReasonAllocated)
		if err := goodUndisturbed(s, ns, "live", vip, allNodes); err != nil {
			t.Fatalf("%s: after the fix: %v", c.name, err)
		}
	}
}
