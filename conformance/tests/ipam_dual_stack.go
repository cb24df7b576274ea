package tests

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/conformance/suite"
	lbv1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// A6 (the pool-family cases; RequireDualStack from a dual-stack pool is BGPIPv6VIP): on
// an IPv4-only pool, PreferDualStack gets exactly one IPv4 VIP, and RequireDualStack gets
// none, with IPAllocated=False and the reason.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "IPAMDualStackPolicies",
		ID:        "A6",
		Description: "from an IPv4-only pool: PreferDualStack gets one IPv4 VIP in it; RequireDualStack gets no IP, " +
			"IPAllocated=False with reason NoPool",
		Profile:  "LB-IPAM",
		Features: []suite.Feature{suite.FeatureDualStack, suite.FeatureIPv6},
		Test:     testDualStackPolicies,
	})
}

func testDualStackPolicies(t *testing.T, s *suite.Suite) {
	ns := s.Namespace(t, "conf-dual-stack-policies")
	block := cidrAt(s, 176, 30) // 176-179: see vipAt
	pool := s.Pool(t, "conf-a6-v4only", []lbv1.IPBlock{block})
	inPool := suite.WithAnnotations(map[string]string{lbv1.AnnotationPool: pool.Name})
	family := func(p corev1.IPFamilyPolicy) suite.ServiceOption {
		return func(svc *corev1.Service) {
			svc.Spec.IPFamilyPolicy = ptr.To(p)
			svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
		}
	}

	t.Log("PreferDualStack from an IPv4-only pool: one IPv4 VIP")
	s.LBService(t, ns, "prefer", "none", inPool, family(corev1.IPFamilyPolicyPreferDualStack))
	if svc := s.Service(t, ns, "prefer"); len(svc.Spec.IPFamilies) != 2 {
		t.Fatalf("the cluster gave PreferDualStack the families %v; the case needs a dual-stack cluster", svc.Spec.IPFamilies)
	}
	s.WaitAllocCondition(t, ns, "prefer", metav1.ConditionTrue, lbv1.ReasonAllocated)
	ips := suite.IngressIPs(s.Service(t, ns, "prefer"))
	if len(ips) != 1 || !ips[0].Is4() || !suite.BlockContains(block, ips[0]) {
		t.Fatalf("PreferDualStack from pool %s (%s) got %v, want one IPv4 address in it", pool.Name, block.CIDR, ips)
	}
	t.Logf("PreferDualStack got %s", ips[0])

	t.Log("RequireDualStack from an IPv4-only pool: no IP, a reason")
	s.LBService(t, ns, "require", "none", inPool, family(corev1.IPFamilyPolicyRequireDualStack))
	c := s.WaitAllocCondition(t, ns, "require", metav1.ConditionFalse, lbv1.ReasonNoPool)
	t.Logf("RequireDualStack: %s: %s", c.Reason, c.Message)
	s.ConsistentlyNoIngress(t, ns, "require", s.Timeouts.Consistently/3)
}
