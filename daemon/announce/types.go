package announce

import (
	"context"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"

	"github.com/bgplb/bgplb/daemon/bgp"
	bgplisters "github.com/bgplb/bgplb/daemon/client/listers/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/datapath"
	"github.com/bgplb/bgplb/daemon/eligibility"
	"github.com/bgplb/bgplb/daemon/eligibility/endpoints"
	"github.com/bgplb/bgplb/daemon/peers"
)

// Speaker is the part of the BGP speaker (daemon/bgp.Speaker) the announcer drives.
type Speaker interface {
	// Announce originates p or replaces the attributes of the same prefix. Idempotent.
	Announce(ctx context.Context, p bgp.Path) error
	// Withdraw withdraws prefix; a prefix that is not announced is a no-op.
	Withdraw(ctx context.Context, prefix netip.Prefix) error
}

// Peers is the node's BGP peer configuration (daemon/peers.Reconciler).
type Peers interface {
	// Configured returns the BGPPeers configured on the speaker with their labels, sorted
	// by name; the slice must not be modified.
	Configured() ([]peers.Peer, error)
	// SyncAllowedPrefixes sets the speaker's allowed prefixes from the caches.
	SyncAllowedPrefixes(ctx context.Context) error
}

// Datapath is the part of daemon/datapath the announcer drives.
type Datapath interface {
	// SetService programs the backends of one Service; desired == nil removes every entry
	// of the Service. Idempotent; on error nothing is assumed applied.
	SetService(ctx context.Context, key string, desired *datapath.ServiceBackends) error
}

// Evaluator is the eligibility Runner.
type Evaluator interface {
	// Evaluate decides whether this node announces in.Service, see eligibility.Runner.
	Evaluate(ctx context.Context, in *eligibility.Input) (eligibility.Decision, error)
}

// Sources are the caches the announcer reads. The listers return cached objects that must
// not be mutated.
type Sources struct {
	Services       corelisters.ServiceLister
	Slices         func(namespace, name string) ([]*endpoints.Slice, error)
	Node           func() *corev1.Node
	Pools          bgplisters.LoadBalancerIPPoolLister
	Advertisements bgplisters.BGPAdvertisementLister
}

// ServiceState is what the announcer last applied for one Service.
type ServiceState struct {
	// Key is "namespace/name".
	Key string
	// Reason is v1alpha1.ReasonAnnounced or why not (another Announced reason of v1alpha1
	// or the eligibility reason).
	Reason  string
	Message string
	// Prefixes announced for the Service.
	Prefixes []netip.Prefix
	// Weight is the eligibility weight (local endpoints taking new flows).
	Weight int64
}
