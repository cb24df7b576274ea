package metrics

import (
	"sync"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

const namespace = "bgplb"

var (
	// SessionsUp is the number of BGP sessions of this node in state Established.
	SessionsUp = metrics.NewGauge(&metrics.GaugeOpts{
		Namespace:      namespace,
		Name:           "bgp_sessions_up",
		Help:           "Number of BGP sessions of this node that are Established.",
		StabilityLevel: metrics.ALPHA,
	})
	// Sessions is the number of configured BGP sessions of this node.
	Sessions = metrics.NewGauge(&metrics.GaugeOpts{
		Namespace:      namespace,
		Name:           "bgp_sessions",
		Help:           "Number of BGP sessions configured on this node.",
		StabilityLevel: metrics.ALPHA,
	})
	// PrefixesAnnounced is the number of prefixes this node announces.
	PrefixesAnnounced = metrics.NewGauge(&metrics.GaugeOpts{
		Namespace:      namespace,
		Name:           "bgp_prefixes_announced",
		Help:           "Number of prefixes this node announces over BGP.",
		StabilityLevel: metrics.ALPHA,
	})
	// ReconcileDuration observes one per-Service sync, by controller and result.
	ReconcileDuration = metrics.NewHistogramVec(&metrics.HistogramOpts{
		Namespace:      namespace,
		Name:           "reconcile_duration_seconds",
		Help:           "Duration of one sync of one key, by controller and result (success, error).",
		Buckets:        metrics.ExponentialBuckets(0.0001, 2, 18),
		StabilityLevel: metrics.ALPHA,
	}, []string{"controller", "result"})
	// Allocations is the number of Services holding an LB-IPAM address, by family (leader only).
	Allocations = metrics.NewGaugeVec(&metrics.GaugeOpts{
		Namespace:      namespace,
		Name:           "ipam_allocations",
		Help:           "Number of addresses the LB-IPAM leader has assigned, by IP family.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"family"})
	// AllocationChanges counts allocation writes by result.
	AllocationChanges = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      namespace,
		Name:           "ipam_allocation_changes_total",
		Help:           "Service status changes written by the LB-IPAM leader, by reason.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"reason"})
	// DatapathServices is the number of Service entries programmed into the eBPF maps.
	DatapathServices = metrics.NewGauge(&metrics.GaugeOpts{
		Namespace:      namespace,
		Name:           "datapath_services",
		Help:           "Number of (VIP, port, protocol) entries programmed into the eBPF service map.",
		StabilityLevel: metrics.ALPHA,
	})
	// EndpointsNotDatapathReady is the number of local endpoints the CNI plugin recorded
	// as not datapath-ready (their Services are not announced from this node for them).
	EndpointsNotDatapathReady = metrics.NewGauge(&metrics.GaugeOpts{
		Namespace:      namespace,
		Name:           "endpoints_not_datapath_ready",
		Help:           "Number of local pod endpoints whose datapath attach or registration failed (see the pods' DatapathNotReady events).",
		StabilityLevel: metrics.ALPHA,
	})
	// LRUEvictions estimates the entries the kernel evicted from the datapath's LRU maps
	// (conntrack: a flow may move to another backend; reverse NAT: replies go out
	// unrewritten until the flow's next request), by map ("ct", "revnat").
	LRUEvictions = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      namespace,
		Name:           "datapath_lru_evictions_total",
		Help:           "Estimated entries evicted from the eBPF conntrack (map=ct) and reverse-NAT (map=revnat) LRU maps because they were full.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"map"})
	// IsLeader is 1 while this daemon holds the LB-IPAM lease.
	IsLeader = metrics.NewGauge(&metrics.GaugeOpts{
		Namespace:      namespace,
		Name:           "leader",
		Help:           "1 while this daemon is the LB-IPAM leader, else 0.",
		StabilityLevel: metrics.ALPHA,
	})
)

var registerOnce sync.Once

// Register registers every metric of this package with the legacy registry. Safe to
// call more than once.
func Register() {
	registerOnce.Do(func() {
		legacyregistry.MustRegister(SessionsUp, Sessions, PrefixesAnnounced, ReconcileDuration,
			Allocations, AllocationChanges, DatapathServices, IsLeader)
		legacyregistry.MustRegister(EndpointsNotDatapathReady, LRUEvictions)
		legacyregistry.CustomMustRegister(peers, pools)
		legacyregistry.MustRegister(AllocationFailures, ServiceAnnouncements, SessionTransitions)
		legacyregistry.CustomMustRegister(datapathCounters)
		// Known label values start at 0, so rate() and alerts see the series before the
		// first event.
		for _, r := range allocationFailureReasons {
			AllocationFailures.WithLabelValues(r)
		}
		ServiceAnnouncements.WithLabelValues("announce")
		ServiceAnnouncements.WithLabelValues("withdraw")
		LRUEvictions.WithLabelValues("ct")
		LRUEvictions.WithLabelValues("revnat")
	})
}
