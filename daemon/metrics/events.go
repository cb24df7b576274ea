package metrics

import (
	"k8s.io/component-base/metrics"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// allocationFailureReasons are the IPAllocated=False reasons (v1alpha1).
var allocationFailureReasons = []string{v1alpha1.ReasonNoPool, v1alpha1.ReasonPoolExhausted,
	v1alpha1.ReasonRequestedIPUnavailable, v1alpha1.ReasonInvalidRequest, v1alpha1.ReasonSharingConflict}

var (
	// AllocationFailures counts LB-IPAM results written to a Service that leave it
	// without an address, by reason (NoPool, PoolExhausted, RequestedIPUnavailable,
	// InvalidRequest, SharingConflict).
	AllocationFailures = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      namespace,
		Name:           "ipam_allocation_failures_total",
		Help:           "Services the LB-IPAM leader marked as not allocated, by reason (leader only).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"reason"})
	// ServiceAnnouncements counts this node starting (action=announce) and stopping
	// (action=withdraw) to announce a Service's VIPs.
	ServiceAnnouncements = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      namespace,
		Name:           "service_announcements_total",
		Help:           "Times this node started (action=announce) or stopped (action=withdraw) announcing a Service's VIPs.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"action"})
	// SessionTransitions counts BGP sessions of this node coming up (direction=up) or
	// going down (direction=down), by BGPPeer.
	SessionTransitions = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      namespace,
		Name:           "bgp_session_transitions_total",
		Help:           "BGP sessions of this node reaching Established (direction=up) or leaving it (direction=down), by peer.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"peer", "direction"})
)
