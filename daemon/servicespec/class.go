package servicespec

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// Class selects the Services bgplb handles (decision 1 of docs/design.md). The LB-IPAM
// allocator, the eligibility plugin serviceclass and the Announced aggregator ask it.
type Class struct {
	// Name is the spec.loadBalancerClass we own; empty means
	// v1alpha1.DefaultLoadBalancerClass.
	Name string
	// Default also claims LoadBalancer Services without a class (--default-class).
	Default bool
}

// Owns reports whether svc's loadBalancerClass is ours; the type is not looked at.
func (c Class) Owns(svc *corev1.Service) bool {
	if svc.Spec.LoadBalancerClass == nil {
		return c.Default
	}
	return *svc.Spec.LoadBalancerClass == c.name()
}

// Handles reports whether svc is a LoadBalancer Service whose class is ours.
func (c Class) Handles(svc *corev1.Service) bool {
	return svc.Spec.Type == corev1.ServiceTypeLoadBalancer && c.Owns(svc)
}

func (c Class) name() string {
	if c.Name == "" {
		return v1alpha1.DefaultLoadBalancerClass
	}
	return c.Name
}
