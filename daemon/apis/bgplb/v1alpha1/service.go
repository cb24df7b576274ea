package v1alpha1

// Well-known names on core/v1 Services.
const (
	// DefaultLoadBalancerClass is the spec.loadBalancerClass bgplb handles by default.
	DefaultLoadBalancerClass = "bgplb.io/bgp"

	// AnnotationLoadBalancerIPs requests specific addresses: a comma-separated list with at
	// most one IP per family, e.g. "203.0.113.10,2001:db8:ffff::10". It takes precedence
	// over the deprecated spec.loadBalancerIP; when both are set they must agree.
	AnnotationLoadBalancerIPs = "bgplb.io/load-balancer-ips"
	// AnnotationPool names the LoadBalancerIPPool to allocate from. A pool named this way
	// is used even when its autoAssign is false; its selectors still apply.
	AnnotationPool = "bgplb.io/pool"
	// AnnotationSharingKey lets Services share one VIP: same key, no (port, protocol)
	// overlap, same externalTrafficPolicy and, with Local, identical selectors.
	AnnotationSharingKey = "bgplb.io/sharing-key"
	// AnnotationSharingCrossNamespace lets a Service share its VIP (same sharing key) with
	// Services of other namespaces: a comma-separated list of namespace names, or "*" for
	// every namespace. Both sides must allow it: a Service in namespace A shares with one
	// in B only when A's Service lists B (or *) and B's lists A (or *). Without it a
	// sharing key only joins Services of one namespace; a Service that requests an address
	// another namespace's Service holds gets IPAllocated=False, reason SharingConflict.
	AnnotationSharingCrossNamespace = "bgplb.io/sharing-cross-namespace"

	// ConditionIPAllocated is the Service condition the LB-IPAM leader writes.
	ConditionIPAllocated = "bgplb.io/IPAllocated"
	// ConditionAnnounced is the Service condition aggregated from the nodes' announcements.
	ConditionAnnounced = "bgplb.io/Announced"
	// ConditionSourceRangesValid is written by the LB-IPAM leader on a Service that gives
	// source ranges (spec.loadBalancerSourceRanges or the legacy annotation
	// service.beta.kubernetes.io/load-balancer-source-ranges): False with reason
	// InvalidSourceRanges when an entry cannot be parsed, and the VIPs then accept no
	// client (fail closed); likewise False with reason TooManySourceRanges when its
	// ranges × ports × IP families exceed what one Service may program (4096 entries).
	// Absent when the Service gives no ranges.
	ConditionSourceRangesValid = "bgplb.io/SourceRangesValid"
)

// Reasons of the bgplb.io/SourceRangesValid condition.
const (
	ReasonSourceRangesValid   = "Valid"
	ReasonInvalidSourceRanges = "InvalidSourceRanges"
	ReasonTooManySourceRanges = "TooManySourceRanges"
)

// Reasons of the bgplb.io/IPAllocated condition.
const (
	// ReasonAllocated: every requested family has an address.
	ReasonAllocated = "Allocated"
	// ReasonNoPool: no ready pool of the needed family is allowed for the Service.
	ReasonNoPool = "NoPool"
	// ReasonPoolExhausted: allowed pools exist but have no free address.
	ReasonPoolExhausted = "PoolExhausted"
	// ReasonRequestedIPUnavailable: a requested IP is outside every allowed pool or in use.
	ReasonRequestedIPUnavailable = "RequestedIPUnavailable"
	// ReasonInvalidRequest: the request itself is malformed (bad IP syntax, two IPs of one
	// family, IP of a family the Service does not have, unknown pool).
	ReasonInvalidRequest = "InvalidRequest"
	// ReasonSharingConflict: the sharing key is used by Services that cannot share with this one.
	ReasonSharingConflict = "SharingConflict"
	// ReasonNotOurClass: the Service is not ours (never written; returned so callers can skip it).
	ReasonNotOurClass = "NotOurClass"
	// ReasonNotLoadBalancer: the Service is not of type LoadBalancer (never written).
	ReasonNotLoadBalancer = "NotLoadBalancer"
)

// Reasons of the bgplb.io/Announced condition; a node's announcer uses the same reasons
// for why it does (not) announce a Service (the node's CLI shows them).
const (
	ReasonAnnounced               = "Announced"
	ReasonNoEligibleEndpoints     = "NoEligibleEndpoints"
	ReasonNoMatchingAdvertisement = "NoMatchingAdvertisement"
	ReasonNoPeers                 = "NoPeers"
	ReasonSessionsDown            = "SessionsDown"
	ReasonNoIP                    = "NoIP"
	ReasonIPOutsidePools          = "IPOutsidePools"
	// ReasonTooManyFrontends: VIPs × ports exceed what one Service may program in the
	// datapath (256): no node programs or announces it.
	ReasonTooManyFrontends = "TooManyFrontends"
)
