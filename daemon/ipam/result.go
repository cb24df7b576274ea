// What the allocator hands back: Config, Result (with its status renderings) and PoolStatus.
package ipam

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// Config selects the Services the allocator handles.
type Config struct {
	// Class is the spec.loadBalancerClass we own; empty means v1alpha1.DefaultLoadBalancerClass.
	Class string
	// DefaultClass also claims LoadBalancer Services without a class (--default-class).
	DefaultClass bool
}

func (c Config) class() string {
	if c.Class == "" {
		return v1alpha1.DefaultLoadBalancerClass
	}
	return c.Class
}

// Result is the allocator's decision for one Service.
type Result struct {
	// Key is "namespace/name".
	Key string
	// Ours is false when the Service is not ours (wrong class, no class without
	// DefaultClass, or not type LoadBalancer). The caller must then write nothing to it:
	// no status, condition, finalizer or event. Any address it held has been released.
	Ours bool
	// IPs are the desired status.loadBalancer.ingress addresses, in the order of the
	// Service's families (primary first). Empty when nothing could be assigned.
	IPs []netip.Addr
	// Pools holds the pool name of each entry of IPs.
	Pools []string
	// Allocated is the status of the bgplb.io/IPAllocated condition.
	Allocated bool
	// Reason is a v1alpha1.Reason* constant ; Message explains it
	// in words and names the field or object at fault.
	Reason  string
	Message string
	// Changed reports that IPs differ from the Service's current status ingress IPs, so
	// the status must be written (also when the status holds a hostname or an ipMode other
	// than VIP). False for a Service whose valid status was kept.
	Changed bool
}

// Ingress renders IPs as status.loadBalancer.ingress entries with ipMode VIP.
func (r Result) Ingress() []corev1.LoadBalancerIngress {
	vip := corev1.LoadBalancerIPModeVIP
	out := make([]corev1.LoadBalancerIngress, 0, len(r.IPs))
	for _, ip := range r.IPs {
		out = append(out, corev1.LoadBalancerIngress{IP: ip.String(), IPMode: &vip})
	}
	return out
}

// Condition renders the bgplb.io/IPAllocated condition (LastTransitionTime left zero:
// merge it with meta.SetStatusCondition so the time changes only on transitions).
func (r Result) Condition(generation int64) metav1.Condition {
	st := metav1.ConditionFalse
	if r.Allocated {
		st = metav1.ConditionTrue
	}
	return metav1.Condition{
		Type:               v1alpha1.ConditionIPAllocated,
		Status:             st,
		Reason:             r.Reason,
		Message:            r.Message,
		ObservedGeneration: generation,
	}
}

// PoolStatus is the desired status of one LoadBalancerIPPool.
type PoolStatus struct {
	Name string
	// Status holds the Ready, Conflicting and Invalid conditions (transition times zero;
	// merge with meta.SetStatusCondition) and per-family counts.
	Status v1alpha1.LoadBalancerIPPoolStatus
}
