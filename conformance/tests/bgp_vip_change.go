package tests

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/bgplb/bgplb/conformance/suite"
	lbv1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// C9 (BGPVIPChange): changing spec.loadBalancerIP from V1 to V2 withdraws V1 and announces
// V2; deleting the Service withdraws V2.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "BGPVIPChange",
		ID:        "C9",
		Description: "changing spec.loadBalancerIP from V1 to V2 withdraws V1 and announces V2; deleting the " +
			"Service withdraws V2",
		Profile:  "LB-BGP",
		Features: []suite.Feature{suite.FeatureETPCluster, suite.FeatureSpecificIP},
		Test:     testBGPVIPChange,
	})
}

func testBGPVIPChange(t *testing.T, s *suite.Suite) {
	ns := s.Namespace(t, "conf-vip-change")
	s.Pool(t, "conf-c9", []lbv1.IPBlock{cidrAt(s, 184, 30)})
	v1, v2 := vipAt(s, 185), vipAt(s, 186)
	got := backedService(t, s, ns, "web", "web", suite.WithLoadBalancerIP(v1.String()))
	if got != v1 {
		t.Fatalf("requested %s, got %s", v1, got)
	}
	s.EventuallyNextHops(t, v2, nil)

	t.Logf("loadBalancerIP %s → %s", v1, v2)
	s.UpdateService(t, ns, "web", func(svc *corev1.Service) { svc.Spec.LoadBalancerIP = v2.String() })
	s.WaitIngressIs(t, ns, "web", v2)
	s.EventuallyNextHops(t, v2, s.AllNodeAddrs())
	s.EventuallyNextHops(t, v1, nil)

	t.Log("delete the Service: V2 withdrawn")
	s.DeleteService(t, ns, "web")
	s.EventuallyNextHops(t, v2, nil)
	s.EventuallyNextHops(t, v1, nil)
}
