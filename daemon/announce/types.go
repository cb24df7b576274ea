package announce

import (
	"context"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"

	"github.com/bgplb/bgplb/daemon/bgp"
	bgplisters "github.com/bgplb/bgplb/daemon/client/listers/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/eligibility"
	"github.com/bgplb/bgplb/daemon/eligibility/endpoints"
)

// Speaker is the part of the BGP speaker (daemon/bgp.Speaker) the announcer drives.
type Speaker interface {
	// SetPeers makes the neighbours equal to peers; unchanged ones are not touched.
	SetPeers(ctx context.Context, peers []bgp.PeerConfig) error
	// SetAllowedPrefixes sets the prefixes Announce may announce inside of.
	SetAllowedPrefixes(ctx context.Context, allowed []netip.Prefix) error
	// Announce originates p or replaces the attributes of the same prefix. Idempotent.
	Announce(ctx context.Context, p bgp.Path) error
	// Withdraw withdraws prefix; a prefix that is not announced is a no-op.
	Withdraw(ctx context.Context, prefix netip.Prefix) error
}

// Datapath is the part of daemon/datapath the announcer drives.
type Datapath interface {
	// SetService programs the backends of one Service; desired == nil removes every entry
	// of the Service. Idempotent; on error nothing is assumed applied.
	SetService(ctx context.Context, key string, desired *ServiceBackends) error
}

// Evaluator is the eligibility Runner.
type Evaluator interface {
	// Evaluate decides whether this node announces in.Service, see eligibility.Runner.
	Evaluate(ctx context.Context, in *eligibility.Input) (eligibility.Decision, error)
}

// ServicePort is one frontend port of a Service.
type ServicePort struct {
	Name     string
	Protocol corev1.Protocol
	Port     int32
}

// ServiceBackends is the datapath's desired state for one Service on this node.
type ServiceBackends struct {
	// VIPs are the Service's ingress IPs.
	VIPs []netip.Addr
	// Ports are the Service's ports (frontend). Backend target ports come from
	// the endpoints' Ports matched by name.
	Ports []ServicePort
	// Local is true for externalTrafficPolicy Local (no local backend: drop), false for
	// Cluster (no local backend: hand to the kernel stack).
	Local bool
	// SourceRanges are the allowed client prefixes (servicespec.ParseSourceRanges: the
	// field, else the legacy annotation). Empty allows everyone unless RestrictSources.
	SourceRanges []netip.Prefix
	// RestrictSources enforces SourceRanges even when it is empty (then no client may
	// connect): set whenever the Service gives ranges, and alone when one of them cannot
	// be parsed (fail closed).
	RestrictSources bool
	// Announced is true when this node announces the VIPs (the datapath then marks them,
	// e.g. to answer ICMP echo).
	Announced bool
	// NewFlow are the local endpoints taking new flows; Keep those whose established flows
	// are kept (a superset), as computed by eligibility.SelectEndpoints.
	NewFlow []eligibility.LocalEndpoint
	Keep    []eligibility.LocalEndpoint
}

// Sources are the caches the announcer reads. The listers return cached objects that must
// not be mutated.
type Sources struct {
	Services       corelisters.ServiceLister
	Slices         func(namespace, name string) ([]*endpoints.Slice, error)
	Node           func() *corev1.Node
	Pools          bgplisters.LoadBalancerIPPoolLister
	Peers          bgplisters.BGPPeerLister
	Advertisements bgplisters.BGPAdvertisementLister
	// Secrets of the daemon's namespace (peer passwords); nil means no passwords.
	Secrets corelisters.SecretNamespaceLister
}

// Announced reasons: why a Service is (not) announced from this node. They are the
// reasons of the bgplb.io/Announced condition.
const (
	ReasonAnnounced               = "Announced"
	ReasonNoEligibleEndpoints     = "NoEligibleEndpoints"
	ReasonNoMatchingAdvertisement = "NoMatchingAdvertisement"
	ReasonNoPeers                 = "NoPeers"
	ReasonSessionsDown            = "SessionsDown"
	ReasonNoIP                    = "NoIP"
	ReasonIPOutsidePools          = "IPOutsidePools"
)

// ServiceState is what the announcer last applied for one Service.
type ServiceState struct {
	// Key is "namespace/name".
	Key string
	// Reason is ReasonAnnounced or why not (a reason above or the eligibility reason).
	Reason  string
	Message string
	// Prefixes announced for the Service.
	Prefixes []netip.Prefix
	// Weight is the eligibility weight (local endpoints taking new flows).
	Weight int64
}

// PeersKey is the work-queue key that makes Sync call SyncPeers.
const PeersKey = "@peers"

// NodeRoutesKey is the work-queue key that makes Sync call SyncNodeRoutes.
const NodeRoutesKey = "@noderoutes"
