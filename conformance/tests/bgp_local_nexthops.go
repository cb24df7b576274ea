package tests

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/conformance/suite"
)

// B1 C1 C2 C4 (BGPLocalExactNextHops): a Service of our class is allocated and advertised
// (B1); ETP=Local announces exactly from nodes with a ready local endpoint (1,2 → 1,2,3 →
// unready pod withdraws its node); ETP=Cluster announces from every node; zero endpoints
// withdraws.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "BGPLocalExactNextHops",
		ID:        "B1 C1 C2 C4",
		Description: "ETP=Local announces exactly from nodes with a ready local endpoint (1,2 → 1,2,3 → " +
			"unready pod withdraws its node); ETP=Cluster announces from every node; zero endpoints withdraws",
		Needs:    []suite.Adapter{suite.AdapterClient},
		Profile:  "LB-BGP",
		Features: []suite.Feature{suite.FeatureETPLocal, suite.FeatureETPCluster, suite.FeatureEndpointReadines, suite.FeatureWithdrawNoEP},
		Test:     testLocalExactNextHops,
	})
}

func testLocalExactNextHops(t *testing.T, s *suite.Suite) {
	ns := s.Namespace(t, "conf-local-nexthops")
	d1 := s.Backend(t, ns, "web", s.NodeName(1), 1)
	d2 := s.Backend(t, ns, "web", s.NodeName(2), 1)
	d3 := s.Backend(t, ns, "web", s.NodeName(3), 0)
	s.LBService(t, ns, "web", "web", suite.WithLocal)
	vip := s.WaitIngress(t, ns, "web")
	pods1 := s.WaitPods(t, ns, d1, 1)
	s.WaitPods(t, ns, d2, 1)

	t.Log("pods on node1 and node2: exactly their two next hops")
	s.EventuallyNextHops(t, vip, s.NodeAddrs(s.NodeName(1), s.NodeName(2)))

	t.Log("scale to node3: three next hops")
	s.Scale(t, ns, d3, 1)
	s.EventuallyNextHops(t, vip, s.NodeAddrs(s.NodeName(1), s.NodeName(2), s.NodeName(3)))

	t.Log("node1's only pod becomes unready: node1 withdrawn")
	podIP := pods1[0].Status.PodIP
	if err := s.SetReady(context.Background(), mustAddr(t, podIP), false); err != nil {
		t.Fatalf("make pod %s unready: %v", pods1[0].Name, err)
	}
	s.EventuallyNextHops(t, vip, s.NodeAddrs(s.NodeName(2), s.NodeName(3)))
	if err := s.SetReady(context.Background(), mustAddr(t, podIP), true); err != nil {
		t.Fatalf("make pod %s ready again: %v", pods1[0].Name, err)
	}
	s.EventuallyNextHops(t, vip, s.NodeAddrs(s.NodeName(1), s.NodeName(2), s.NodeName(3)))

	t.Log("ETP=Cluster with endpoints on two nodes: every node announces")
	s.Scale(t, ns, d3, 0)
	s.UpdateService(t, ns, "web", func(svc *corev1.Service) {
		svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	})
	s.EventuallyNextHops(t, vip, s.AllNodeAddrs())

	t.Log("zero endpoints: withdrawn everywhere, ingress IP kept")
	s.Scale(t, ns, d1, 0)
	s.Scale(t, ns, d2, 0)
	s.EventuallyNextHops(t, vip, nil)
	svc, err := s.Kube.CoreV1().Services(ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(svc.Status.LoadBalancer.Ingress) == 0 || svc.Status.LoadBalancer.Ingress[0].IP != vip.String() {
		t.Fatalf("ingress changed while scaling to zero: %+v", svc.Status.LoadBalancer.Ingress)
	}
}
