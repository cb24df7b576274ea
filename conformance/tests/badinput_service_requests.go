package tests

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/bgplb/bgplb/conformance/suite"
	lbv1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// G5 (BadInputServiceRequests): a malformed requested IP, an IP of a family the Service
// lacks, two IPv4 addresses in the annotation, an unknown pool and an IP outside every pool
// each give no ingress and a reason (InvalidRequest / RequestedIPUnavailable); another
// Service keeps its IP and route.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "BadInputServiceRequests",
		ID:        "G5",
		Description: "a malformed requested IP, an IP of a family the Service lacks, two IPv4 addresses in the " +
			"annotation, an unknown pool and an IP outside every pool each give no ingress and a reason " +
			"(InvalidRequest / RequestedIPUnavailable); another Service keeps its IP and route",
		Profile:  "LB-IPAM",
		Features: []suite.Feature{suite.FeatureSpecificIP},
		Test:     testBadInputServiceRequests,
	})
}

func testBadInputServiceRequests(t *testing.T, s *suite.Suite) {
	ns := s.Namespace(t, "conf-bad-requests")
	vip := backedService(t, s, ns, "good", "web")
	allNodes := s.AllNodeAddrs()
	outside := vipAt(s, 254)
	s.RequireNoPool(t, outside)
	annot := func(k, v string) suite.ServiceOption {
		return suite.WithAnnotations(map[string]string{k: v})
	}

	cases := []struct {
		name   string
		opt    suite.ServiceOption
		reason string
	}{
		{"malformed-annotation", annot(lbv1.AnnotationLoadBalancerIPs, vipAt(s, 10).String()+".5"), lbv1.ReasonInvalidRequest},
		{"cidr-in-annotation", annot(lbv1.AnnotationLoadBalancerIPs, vipAt(s, 10).String()+"/32"), lbv1.ReasonInvalidRequest},
		{"wrong-family", annot(lbv1.AnnotationLoadBalancerIPs, "2001:db8:ffff::10"), lbv1.ReasonInvalidRequest},
		{"two-ipv4", annot(lbv1.AnnotationLoadBalancerIPs, vipAt(s, 10).String()+","+vipAt(s, 11).String()), lbv1.ReasonInvalidRequest},
		{"field-disagrees", func(svc *corev1.Service) {
			annot(lbv1.AnnotationLoadBalancerIPs, vipAt(s, 10).String())(svc)
			svc.Spec.LoadBalancerIP = vipAt(s, 11).String()
		}, lbv1.ReasonInvalidRequest},
		{"unknown-pool", annot(lbv1.AnnotationPool, "conf-g5-no-such-pool"), lbv1.ReasonInvalidRequest},
		{"outside-every-pool", suite.WithLoadBalancerIP(outside.String()), lbv1.ReasonRequestedIPUnavailable},
	}
	var bad []string
	for _, c := range cases {
		s.LBService(t, ns, c.name, "web", c.opt)
		bad = append(bad, c.name)
	}

	// A malformed spec.loadBalancerIP may be refused by the API server itself.
	malformed := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "malformed-field", Namespace: ns},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: &s.Class,
			LoadBalancerIP: "203.0.113.300", Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}}},
	}
	_, err := s.Kube.CoreV1().Services(ns).Create(ctxBG, malformed, metav1.CreateOptions{})
	switch {
	case err == nil:
		bad = append(bad, malformed.Name)
		cases = append(cases, struct {
			name   string
			opt    suite.ServiceOption
			reason string
		}{malformed.Name, nil, lbv1.ReasonInvalidRequest})
	case apierrors.IsInvalid(err):
		t.Logf("malformed spec.loadBalancerIP rejected by the API server: %v", err)
	default:
		t.Fatalf("create %s: %v", malformed.Name, err)
	}

	for _, c := range cases {
		cond := s.WaitAllocCondition(t, ns, c.name, metav1.ConditionFalse, c.reason)
		t.Logf("%s: %s: %s", c.name, cond.Reason, cond.Message)
		if cond.Message == "" {
			t.Errorf("%s: condition %s has no message", c.name, cond.Reason)
		}
	}
	suite.Consistently(t, s.Timeouts.Consistently, "bad requests get nothing; the good Service is undisturbed", func() error {
		for _, n := range bad {
			svc, err := s.Kube.CoreV1().Services(ns).Get(ctxBG, n, getOpts)
			if err != nil {
				return err
			}
			if len(svc.Status.LoadBalancer.Ingress) > 0 {
				return fmt.Errorf("%s got %+v", n, svc.Status.LoadBalancer.Ingress)
			}
		}
		return goodUndisturbed(s, ns, "good", vip, allNodes)
	})
}
