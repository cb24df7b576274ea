package servicespec

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestClass(t *testing.T) {
	other, ours := "example.com/lb", "bgplb.io/bgp"
	svc := func(typ corev1.ServiceType, class *string) *corev1.Service {
		return &corev1.Service{Spec: corev1.ServiceSpec{Type: typ, LoadBalancerClass: class}}
	}
	for _, c := range []struct {
		class   Class
		svc     *corev1.Service
		handles bool
	}{
		{Class{}, svc(corev1.ServiceTypeLoadBalancer, &ours), true},
		{Class{}, svc(corev1.ServiceTypeLoadBalancer, &other), false},
		{Class{}, svc(corev1.ServiceTypeLoadBalancer, nil), false},
		{Class{Default: true}, svc(corev1.ServiceTypeLoadBalancer, nil), true},
		{Class{Default: true}, svc(corev1.ServiceTypeClusterIP, nil), false},
		{Class{Name: other}, svc(corev1.ServiceTypeLoadBalancer, &other), true},
		{Class{Name: other}, svc(corev1.ServiceTypeLoadBalancer, &ours), false},
	} {
		if got := c.class.Handles(c.svc); got != c.handles {
			t.Errorf("%+v handles %+v: %v, want %v", c.class, c.svc.Spec, got, c.handles)
		}
	}
}
