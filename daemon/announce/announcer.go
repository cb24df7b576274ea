package announce

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/bgp"
	"github.com/bgplb/bgplb/daemon/datapath"
	"github.com/bgplb/bgplb/daemon/eligibility"
	"github.com/bgplb/bgplb/daemon/metrics"
	"github.com/bgplb/bgplb/daemon/peers"
	"github.com/bgplb/bgplb/daemon/pools"
	"github.com/bgplb/bgplb/daemon/servicespec"
)

// BytesPerWeight is the link bandwidth (bytes/s) one unit of eligibility weight stands for
// in the link-bandwidth extended community (1 Mbit/s per local endpoint). Routers use the
// values relative to each other, so the unit only has to be the same on every node.
const BytesPerWeight = 125000

// Announcer applies per-Service desired state to a Speaker and a Datapath.
type Announcer struct {
	src      Sources
	eval     Evaluator
	speaker  Speaker
	peers    Peers
	datapath Datapath // nil: datapath disabled (kube-proxy serves the VIPs)

	mu       sync.Mutex
	services map[string]*applied           // Service key -> what was applied for it
	prefixes map[netip.Prefix]servicePaths // prefix -> the Services wanting it, with their paths
	sent     map[netip.Prefix]*bgp.Path    // prefix -> merged path announced to the speaker
	onChange func()
}

// applied is the bookkeeping of one Service.
type applied struct {
	state    ServiceState
	paths    paths  // this Service's wanted paths
	backends uint64 // fingerprint of the datapath state last programmed (0: none)
}

// paths are one Service's paths, one per prefix (a Service has one prefix per VIP, so one
// or two: a slice costs a fraction of a map at 10k Services).
type paths []*bgp.Path

// get returns the path of prefix (nil: none).
func (ps paths) get(prefix netip.Prefix) *bgp.Path {
	for _, p := range ps {
		if p.Prefix == prefix {
			return p
		}
	}
	return nil
}

// servicePath is one Service's wanted path for a prefix.
type servicePath struct {
	key  string
	path *bgp.Path
}

// servicePaths are the Services wanting one prefix, sorted by key; treated as immutable
// (with and without return new slices). Nearly always a single Service.
type servicePaths []servicePath

func (sp servicePaths) with(key string, p *bgp.Path) servicePaths {
	out := make(servicePaths, 0, len(sp)+1)
	for _, e := range sp {
		if e.key != key {
			out = append(out, e)
		}
	}
	out = append(out, servicePath{key: key, path: p})
	slices.SortFunc(out, func(x, y servicePath) int { return strings.Compare(x.key, y.key) })
	return out
}

func (sp servicePaths) without(key string) servicePaths {
	out := make(servicePaths, 0, len(sp))
	for _, e := range sp {
		if e.key != key {
			out = append(out, e)
		}
	}
	return out
}

// New returns an Announcer. datapath may be nil (datapath disabled).
func New(src Sources, eval Evaluator, speaker Speaker, peers Peers, datapath Datapath) *Announcer {
	return &Announcer{
		src:      src,
		eval:     eval,
		speaker:  speaker,
		peers:    peers,
		datapath: datapath,
		services: map[string]*applied{},
		prefixes: map[netip.Prefix]servicePaths{},
		sent:     map[netip.Prefix]*bgp.Path{},
	}
}

// OnChange sets a function called (without locks held) after the announced state changed;
// daemon/status uses it to refresh the node's BGPNodeState. Call before the first Sync.
func (a *Announcer) OnChange(fn func()) { a.onChange = fn }

// desired is the computed target for one Service.
type desired struct {
	state    ServiceState
	paths    paths // distinct prefixes
	backends *datapath.ServiceBackends
}

// SyncService is the watch.SyncFunc: it makes this node's announcements and datapath
// entries of Service key match the caches.
func (a *Announcer) SyncService(ctx context.Context, key string) error {
	logger := klog.FromContext(ctx).WithValues("service", key)
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil // a malformed key will never sync; drop it
	}
	svc, err := a.src.Services.Services(namespace).Get(name)
	switch {
	case apierrors.IsNotFound(err):
		svc = nil
	case err != nil:
		return fmt.Errorf("get service %s: %w", key, err)
	}
	want, err := a.compute(ctx, key, svc)
	if err != nil {
		return err
	}
	changed, err := a.apply(ctx, key, want)
	if err != nil {
		return err
	}
	if changed {
		logger.V(2).Info("service state applied", "reason", want.state.Reason, "prefixes", want.state.Prefixes,
			"weight", want.state.Weight, "datapath", want.backends != nil)
		if a.onChange != nil {
			a.onChange()
		}
	}
	return nil
}

// compute derives the desired state of Service key (svc nil: deleted) with PlanService
// for this node.
func (a *Announcer) compute(ctx context.Context, key string, svc *corev1.Service) (desired, error) {
	d := desired{state: ServiceState{Key: key}}
	if svc == nil {
		d.state.Reason, d.state.Message = v1alpha1.ReasonNoIP, "service deleted"
		return d, nil
	}
	in := PlanInput{Service: svc}
	var err error
	if in.Slices, err = a.src.Slices(svc.Namespace, svc.Name); err != nil {
		return d, err
	}
	if in.Advertisements, err = a.src.Advertisements.List(labels.Everything()); err != nil {
		return d, fmt.Errorf("list bgpadvertisements: %w", err)
	}
	if in.Pools, err = a.src.Pools.List(labels.Everything()); err != nil {
		return d, fmt.Errorf("list loadbalancerippools: %w", err)
	}
	peers, err := a.peers.Configured()
	if err != nil {
		return d, err
	}
	self := PlanNode{Eval: a.eval}
	if a.src.Node != nil {
		self.Node = a.src.Node()
	}
	if self.Node != nil {
		self.Name = self.Node.Name
	}
	for _, p := range peers {
		self.Peers = append(self.Peers, PlanPeer{Name: p.Name, Address: p.Address, Labels: p.Labels})
	}
	plans, err := PlanService(ctx, in, []PlanNode{self})
	if err != nil {
		return d, err
	}
	plan := plans[0]
	d.state = plan.State
	if !plan.Decision.InScope || len(plan.VIPs) == 0 {
		return d, nil
	}
	d.backends = backendsFor(svc, plan.VIPs, plan.Decision)
	if plan.Announces() {
		d.paths = plan.paths
		d.backends.Announced = true
	}
	return d, nil
}

// apply moves the applied state of key to want: withdraw, then datapath, then announce.
// Bookkeeping is updated step by step, only after each speaker/datapath call succeeded.
func (a *Announcer) apply(ctx context.Context, key string, want desired) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	cur, tracked := a.services[key]
	if !tracked {
		cur = &applied{}
	}
	// An untracked Service that stays out of scope (another class, no IP) is no change.
	changed := (tracked || want.backends != nil) && !reflect.DeepEqual(cur.state, want.state)

	// 1. Withdraw (or reduce the contribution to) prefixes this Service no longer wants.
	for _, old := range slices.Clone(cur.paths) {
		prefix := old.Prefix
		if want.paths.get(prefix) != nil {
			continue
		}
		rest := a.prefixes[prefix].without(key)
		if err := a.sendLocked(ctx, prefix, rest); err != nil {
			return changed, err
		}
		cur.paths = slices.DeleteFunc(cur.paths, func(p *bgp.Path) bool { return p == old })
		a.setWantsLocked(prefix, rest)
		changed = true
	}

	// 2. Program the datapath before anything new is announced; clean it after withdrawals.
	if fp := fingerprint(want.backends); a.datapath != nil && fp != cur.backends {
		if err := a.datapath.SetService(ctx, key, want.backends); err != nil {
			return changed, fmt.Errorf("program datapath for service %s: %w", key, err)
		}
		cur.backends = fp
		changed = true
	}

	// 3. Announce new prefixes and changed attributes.
	for _, p := range want.paths {
		prefix := p.Prefix
		old := cur.paths.get(prefix)
		if old != nil && reflect.DeepEqual(old, p) {
			continue
		}
		wants := a.prefixes[prefix].with(key, p)
		if err := a.sendLocked(ctx, prefix, wants); err != nil {
			return changed, err
		}
		if old == nil {
			cur.paths = append(cur.paths, p)
		} else {
			cur.paths[slices.Index(cur.paths, old)] = p
		}
		a.setWantsLocked(prefix, wants)
		changed = true
	}

	cur.state = want.state
	// Track Services in scope (ours, with an IP) and anything still applied; forget the rest
	// (foreign classes, deleted Services) so memory follows our Services only.
	if want.backends == nil && len(cur.paths) == 0 && cur.backends == 0 {
		delete(a.services, key)
	} else {
		a.services[key] = cur
	}
	metrics.PrefixesAnnounced.Set(float64(len(a.sent)))
	return changed, nil
}

// sendLocked makes the speaker's path for prefix the merge of wants (withdraw when empty).
func (a *Announcer) sendLocked(ctx context.Context, prefix netip.Prefix, wants servicePaths) error {
	old, announced := a.sent[prefix]
	if len(wants) == 0 {
		if !announced {
			return nil
		}
		if err := a.speaker.Withdraw(ctx, prefix); err != nil {
			return fmt.Errorf("withdraw %s: %w", prefix, err)
		}
		delete(a.sent, prefix)
		return nil
	}
	peers, err := a.peers.Configured()
	if err != nil {
		return err
	}
	merged := mergePaths(prefix, wants, peers)
	if announced && reflect.DeepEqual(*old, merged) {
		return nil
	}
	err = a.speaker.Announce(ctx, merged)
	if errors.Is(err, bgp.ErrPrefixNotAllowed) {
		// The pool may be newer than the speaker's allowed set (the peers reconciler's sync
		// is still queued): refresh the set from the cache and try once more.
		if serr := a.peers.SyncAllowedPrefixes(ctx); serr == nil {
			err = a.speaker.Announce(ctx, merged)
		}
	}
	if err != nil {
		if errors.Is(err, bgp.ErrPrefixNotAllowed) {
			return fmt.Errorf("announce %s: outside every pool: %w", prefix, err)
		}
		return fmt.Errorf("announce %s: %w", prefix, err)
	}
	if len(wants) == 1 && reflect.DeepEqual(*wants[0].path, merged) {
		// The common case, one Service and nothing to merge: keep its path rather than a
		// copy (paths are never mutated once computed).
		a.sent[prefix] = wants[0].path
	} else {
		a.sent[prefix] = &merged
	}
	return nil
}

func (a *Announcer) setWantsLocked(prefix netip.Prefix, wants servicePaths) {
	if len(wants) == 0 {
		delete(a.prefixes, prefix)
		return
	}
	a.prefixes[prefix] = wants
}

// Prefix is one announced prefix with the Services behind it.
type Prefix struct {
	Prefix   netip.Prefix
	Services []string
	// Peers are the names of the BGPPeers the prefix is sent to, sorted; nil means every
	// peer (no peerSelector limits it).
	Peers []string
}

// State returns the applied state: every tracked Service (sorted by key) and every
// announced prefix (sorted) with its Services.
func (a *Announcer) State() ([]ServiceState, []Prefix) {
	peers, _ := a.peers.Configured() // an error leaves the peers unnamed
	a.mu.Lock()
	defer a.mu.Unlock()
	svcs := make([]ServiceState, 0, len(a.services))
	for _, s := range a.services {
		st := s.state
		st.Prefixes = slices.Clone(st.Prefixes)
		svcs = append(svcs, st)
	}
	slices.SortFunc(svcs, func(x, y ServiceState) int { return strings.Compare(x.Key, y.Key) })
	prefixes := make([]Prefix, 0, len(a.sent))
	for p := range a.sent {
		var keys []string
		for _, sp := range a.prefixes[p] {
			keys = append(keys, sp.key) // sorted
		}
		prefixes = append(prefixes, Prefix{Prefix: p, Services: keys, Peers: peerNames(a.sent[p], peers)})
	}
	slices.SortFunc(prefixes, func(x, y Prefix) int { return pools.ComparePrefix(x.Prefix, y.Prefix) })
	return svcs, prefixes
}

// PrefixCounts returns how many IPv4 and IPv6 prefixes the node originates for
// Services.
func (a *Announcer) PrefixCounts() (v4, v6 int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for p := range a.sent {
		if p.Addr().Is4() {
			v4++
		} else {
			v6++
		}
	}
	return v4, v6
}

// Announced reports whether the node originates prefix for a Service.
func (a *Announcer) Announced(prefix netip.Prefix) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.sent[prefix]
	return ok
}

// PeersChanged re-sends the VIPs that Services share for every peer and for selected
// peers only: their merge spans the configured peers, which changed. No Service's own
// path changes when a peer comes or goes. daemon/app calls it from the peers reconciler's
// OnPeersChanged.
func (a *Announcer) PeersChanged(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	for prefix, wants := range a.prefixes {
		if mixedPeerScopes(wants) {
			if err := a.sendLocked(ctx, prefix, wants); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// mixedPeerScopes reports whether some of wants go to every peer and some to selected
// peers only.
func mixedPeerScopes(wants servicePaths) bool {
	open, restricted := false, false
	for _, w := range wants {
		open = open || w.path.PeerAttributes == nil
		restricted = restricted || w.path.PeerAttributes != nil
	}
	return open && restricted
}

// peerNames returns the names of the peers (sorted by name) p is sent to (nil: every
// peer).
func peerNames(p *bgp.Path, peers []peers.Peer) []string {
	if p.PeerAttributes == nil {
		return nil
	}
	names := []string{}
	for _, peer := range peers {
		if _, ok := p.PeerAttributes[peer.Address]; ok {
			names = append(names, peer.Name)
		}
	}
	return names
}

// ingressIPs returns the Service's status.loadBalancer.ingress IPs, deduplicated.
func ingressIPs(svc *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		ip, err := netip.ParseAddr(ing.IP)
		if err != nil {
			continue
		}
		ip = ip.Unmap()
		if !slices.Contains(out, ip) {
			out = append(out, ip)
		}
	}
	return out
}

func backendsFor(svc *corev1.Service, vips []netip.Addr, dec eligibility.Decision) *datapath.ServiceBackends {
	b := &datapath.ServiceBackends{
		VIPs:    vips,
		Local:   svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
		NewFlow: dec.NewFlowEndpoints,
		Keep:    dec.Endpoints,
	}
	for _, p := range svc.Spec.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		b.Ports = append(b.Ports, datapath.ServicePort{Name: p.Name, Protocol: proto, Port: p.Port})
	}
	sr := servicespec.ParseSourceRanges(svc)
	b.SourceRanges, b.RestrictSources = sr.Allowed(), sr.Restrict
	return b
}
