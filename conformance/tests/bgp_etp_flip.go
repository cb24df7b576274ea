package tests

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/bgplb/bgplb/conformance/suite"
)

// C6: switching externalTrafficPolicy moves the VIP's next hops between the nodes
// with a local endpoint and every node, without resetting a BGP session.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "BGPETPFlip",
		ID:        "C6",
		Description: "a Service switched Local → Cluster → Local: next hops go from the endpoint nodes to every " +
			"node and back, and no BGP session is reset",
		Profile:  "LB-BGP",
		Features: []suite.Feature{suite.FeatureETPLocal, suite.FeatureETPCluster, suite.FeatureNoSessionFlaps},
		Test:     testETPFlip,
	})
}

func testETPFlip(t *testing.T, s *suite.Suite) {
	ns := s.Namespace(t, "conf-etp-flip")
	d := s.Backend(t, ns, "flip", s.NodeName(1), 1)
	s.LBService(t, ns, "flip", "flip", suite.WithLocal)
	vip := s.WaitIngress(t, ns, "flip")
	s.WaitPods(t, ns, d, 1)
	local := s.NodeAddrs(s.NodeName(1))
	s.EventuallyNextHops(t, vip, local)
	before := s.RequireSessions(t)

	setETP := func(p corev1.ServiceExternalTrafficPolicy) {
		s.UpdateService(t, ns, "flip", func(svc *corev1.Service) { svc.Spec.ExternalTrafficPolicy = p })
	}
	t.Log("Local → Cluster: every node")
	setETP(corev1.ServiceExternalTrafficPolicyCluster)
	s.EventuallyNextHops(t, vip, s.AllNodeAddrs())
	t.Log("Cluster → Local: the endpoint's node only")
	setETP(corev1.ServiceExternalTrafficPolicyLocal)
	s.EventuallyNextHops(t, vip, local)
	t.Log("Local → Cluster again")
	setETP(corev1.ServiceExternalTrafficPolicyCluster)
	s.EventuallyNextHops(t, vip, s.AllNodeAddrs())
	if err := s.SessionsUnchanged(context.Background(), before); err != nil {
		t.Errorf("flipping the policy reset a session: %v", err)
	}
}
