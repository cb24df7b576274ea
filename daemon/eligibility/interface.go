package eligibility

import (
	"context"
	"net/netip"

	corev1 "k8s.io/api/core/v1"

	"github.com/bgplb/bgplb/daemon/eligibility/endpoints"
)

// Input is what one evaluation looks at. The Runner and plugins never mutate it (the
// objects come straight from informer caches).
type Input struct {
	// Service under evaluation (required).
	Service *corev1.Service
	// Slices are the views of the EndpointSlices of Service (label
	// kubernetes.io/service-name), any family.
	Slices []*endpoints.Slice
	// Node is this node's object; nil when the informer has not seen it (or it was deleted).
	Node *corev1.Node
}

// EndpointRegistry is the view of the CNI endpoint registry (daemon/registry) that plugins
// need.
type EndpointRegistry interface {
	// Registered reports whether the CNI plugin registered, on this node, an attachment of
	// the pod podNamespace/podName that carries ip. Implementations must be safe for
	// concurrent use and must not block. An empty podName never matches (the selection
	// skips endpoints without a trusted targetRef before asking).
	Registered(podNamespace, podName string, ip netip.Addr) bool
}

// SessionState is the view of the BGP speaker that plugins need.
type SessionState interface {
	// EstablishedPeers returns how many BGP sessions of this node are Established.
	// Safe for concurrent use; must not block on the network.
	EstablishedPeers() int
}

// Handle gives plugins access to node-wide services. It is shared by all evaluations.
type Handle interface {
	// NodeName is the name of the node this daemon runs on (never empty).
	NodeName() string
	// Endpoints returns the CNI endpoint registry; nil when the daemon runs without one.
	Endpoints() EndpointRegistry
	// Sessions returns the BGP session state; nil when not available.
	Sessions() SessionState
}

// Plugin is the parent of every extension point.
type Plugin interface {
	// Name returns the unique name the plugin is registered and configured under.
	Name() string
}

// PreFilterPlugin runs first, in profile order, for every Service. It decides whether the
// Service is in scope for this node at all, and may add an endpoint predicate to state
// (see CycleState.AddEndpointPredicate) before the endpoint selection is computed.
type PreFilterPlugin interface {
	Plugin
	// PreFilter returns Success to continue, Skip to skip this plugin's Filter and Score
	// for this Service, Ineligible to take the Service out of scope (no announcement and
	// no datapath endpoints), or Error.
	PreFilter(ctx context.Context, state *CycleState, in *Input) *Status
}

// FilterPlugin decides whether this node may announce the Service.
type FilterPlugin interface {
	Plugin
	// Filter returns Success (or nil) to allow the announcement, Ineligible with a stable
	// camelCase reason to refuse it, or Error. The first non-Success status stops the
	// filter phase. state.Selection() is available.
	Filter(ctx context.Context, state *CycleState, in *Input) *Status
}

// ScorePlugin contributes to the announcement's weight (weighted ECMP).
type ScorePlugin interface {
	Plugin
	// Score returns a non-negative score; the Runner multiplies it by the plugin's
	// profile weight and sums over all score plugins. Runs only when every filter passed.
	Score(ctx context.Context, state *CycleState, in *Input) (int64, *Status)
}

// CycleState carries per-evaluation data between plugins. It is created by the Runner
// for one Evaluate call and must not be retained.
type CycleState struct {
	predicates []RegisteredFunc
	selection  *Selection
	skip       map[string]bool // plugin name -> skipped by its PreFilter
	data       map[string]any  // plugin-private key -> value
}

// NewCycleState returns an empty state (for plugin tests).
func NewCycleState() *CycleState {
	return &CycleState{skip: map[string]bool{}, data: map[string]any{}}
}

// AddEndpointPredicate narrows the local endpoints that count as eligible. Only valid
// during PreFilter; every predicate must accept an endpoint for it to be eligible.
func (s *CycleState) AddEndpointPredicate(fn RegisteredFunc) {
	s.predicates = append(s.predicates, fn)
}

// Selection returns the endpoint selection computed after PreFilter; nil before.
func (s *CycleState) Selection() *Selection { return s.selection }

// SetSelection stores the selection (used by the Runner and by plugin tests).
func (s *CycleState) SetSelection(sel *Selection) { s.selection = sel }

// Write stores plugin-private data under key.
func (s *CycleState) Write(key string, v any) { s.data[key] = v }

// Read returns plugin-private data stored under key.
func (s *CycleState) Read(key string) (any, bool) {
	v, ok := s.data[key]
	return v, ok
}

// registered combines the predicates; nil when there are none.
func (s *CycleState) registered() RegisteredFunc {
	if len(s.predicates) == 0 {
		return nil
	}
	preds := s.predicates
	return func(ns, name string, ip netip.Addr) bool {
		for _, p := range preds {
			if !p(ns, name, ip) {
				return false
			}
		}
		return true
	}
}

// Decision is the outcome of one evaluation for this node.
type Decision struct {
	// Announce is true when this node should advertise the Service's VIPs.
	Announce bool
	// Reason is a stable camelCase word: ReasonEligible, or the rejecting plugin's reason.
	Reason string
	// Message explains Reason for humans.
	Message string
	// Plugin names the plugin that rejected the Service ("" when announced).
	Plugin string
	// Endpoints are the local endpoints whose established flows the datapath keeps
	// (Selection.Keep). Empty when a PreFilter took the Service out of scope.
	Endpoints []LocalEndpoint
	// NewFlowEndpoints are the local endpoints that take new flows (Selection.NewFlow).
	NewFlowEndpoints []LocalEndpoint
	// Weight is the weighted sum of the score plugins (0 when not announcing).
	Weight int64
	// InScope is false when a PreFilter rejected the Service (not ours, no IP): the
	// datapath must not program it.
	InScope bool
}

// simpleHandle is the Handle returned by NewHandle.
type simpleHandle struct {
	node      string
	endpoints EndpointRegistry
	sessions  SessionState
}

// NewHandle returns a Handle over the given parts; endpoints and sessions may be nil.
func NewHandle(nodeName string, endpoints EndpointRegistry, sessions SessionState) Handle {
	return &simpleHandle{node: nodeName, endpoints: endpoints, sessions: sessions}
}

func (h *simpleHandle) NodeName() string            { return h.node }
func (h *simpleHandle) Endpoints() EndpointRegistry { return h.endpoints }
func (h *simpleHandle) Sessions() SessionState      { return h.sessions }
