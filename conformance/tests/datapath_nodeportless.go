package tests

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/conformance/suite"
)

// D5: a LoadBalancer Service with allocateLoadBalancerNodePorts=false gets no node
// port, gets its VIP, and answers through the datapath from every eligible backend.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "DatapathNodePortless",
		ID:        "D5",
		Description: "allocateLoadBalancerNodePorts=false: no node port, an ingress IP, and 300 new connections " +
			"through the VIP (ETP=Local, backends on node1 and node2) all succeed and reach every backend",
		Profile:  "LB-DATAPATH",
		Features: []suite.Feature{suite.FeatureTCPViaVIP, suite.FeatureETPLocal},
		Test:     testDatapathNodePortless,
	})
}

func testDatapathNodePortless(t *testing.T, s *suite.Suite) {
	ctx := context.Background()
	ns := s.Namespace(t, "conf-dp-noport")
	d1 := s.Backend(t, ns, "noport", s.NodeName(1), 1)
	d2 := s.Backend(t, ns, "noport", s.NodeName(2), 1)
	s.LBService(t, ns, "noport", "noport", suite.WithLocal, func(svc *corev1.Service) {
		svc.Spec.AllocateLoadBalancerNodePorts = ptr.To(false)
	})
	vip := s.WaitIngress(t, ns, "noport")
	svc := s.Service(t, ns, "noport")
	for _, p := range svc.Spec.Ports {
		if p.NodePort != 0 {
			t.Fatalf("port %s got node port %d with allocateLoadBalancerNodePorts=false", p.Name, p.NodePort)
		}
	}
	pods := append(s.WaitPods(t, ns, d1, 1), s.WaitPods(t, ns, d2, 1)...)
	s.EventuallyNextHops(t, vip, s.NodeAddrs(s.NodeName(1), s.NodeName(2)))
	suite.Eventually(t, s.Timeouts.Converge, "first answer from "+vip.String(), func() error {
		_, err := s.HTTPGet(ctx, vip, 80, "/hostname")
		return err
	})

	spreadRequests(t, s, vip, 300, pods, "")
}
