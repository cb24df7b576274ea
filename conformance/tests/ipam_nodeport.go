package tests

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/bgplb/bgplb/conformance/suite"
)

// B5 (IPAMNonLoadBalancerTypes): NodePort and ClusterIP Services never get ingress from us;
// LoadBalancer → NodePort releases the IP and withdraws it.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName:   "IPAMNonLoadBalancerTypes",
		ID:          "B5",
		Description: "NodePort and ClusterIP Services never get ingress from us; LoadBalancer → NodePort releases the IP and withdraws it",
		Profile:     "LB-IPAM",
		Features:    []suite.Feature{suite.FeatureClassSelection, suite.FeatureIPRelease},
		Test:        testIPAMNodePort,
	})
}

func testIPAMNodePort(t *testing.T, s *suite.Suite) {
	ns := s.Namespace(t, "conf-ipam-nodeport")
	for _, typ := range []corev1.ServiceType{corev1.ServiceTypeNodePort, corev1.ServiceTypeClusterIP} {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "plain-" + strings.ToLower(string(typ)), Namespace: ns},
			Spec: corev1.ServiceSpec{Type: typ, Selector: map[string]string{"app": "web"},
				Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}}},
		}
		if _, err := s.Kube.CoreV1().Services(ns).Create(ctxBG, svc, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create %s service: %v", typ, err)
		}
	}
	vip := backedService(t, s, ns, "web", "web")

	t.Logf("LB → NodePort: %s released and withdrawn", vip)
	s.UpdateService(t, ns, "web", suite.ToType(corev1.ServiceTypeNodePort))
	s.WaitIngressIs(t, ns, "web")
	s.EventuallyNextHops(t, vip, nil)

	s.ConsistentlyNoIngress(t, ns, "plain-nodeport", s.Timeouts.Consistently/3)
	s.ConsistentlyNoIngress(t, ns, "plain-clusterip", s.Timeouts.Consistently/3)
	s.ConsistentlyNoIngress(t, ns, "web", s.Timeouts.Consistently/3)
}
