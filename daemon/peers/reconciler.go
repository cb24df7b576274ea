package peers

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/klog/v2"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/bfd"
	"github.com/bgplb/bgplb/daemon/bgp"
	bgplisters "github.com/bgplb/bgplb/daemon/client/listers/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/pools"
)

// Key is the work-queue key of the reconciler: every trigger enqueues it. It also names
// the reconciler's errors in the node's BGPNodeState.
const Key = "@peers"

// Speaker is the part of the BGP speaker (daemon/bgp.Speaker) the reconciler drives.
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

// Sources are the caches the reconciler reads (cached objects, never mutated).
type Sources struct {
	// Node returns this node's object (nil: not known yet).
	Node  func() *corev1.Node
	Pools bgplisters.LoadBalancerIPPoolLister
	Peers bgplisters.BGPPeerLister
	// Secrets of the daemon's namespace (peer passwords); nil means no passwords.
	Secrets corelisters.SecretNamespaceLister
}

// Peer is a BGPPeer configured on the speaker, as the advertisements' peerSelectors see it.
type Peer struct {
	Name    string
	Address netip.Addr
	Labels  map[string]string
}

// Problem is a BGPPeer selecting this node that could not be configured.
type Problem struct {
	Peer    string
	Message string
}

// Reconciler configures the speaker's neighbours, allowed prefixes and pod CIDR routes.
type Reconciler struct {
	src     Sources
	speaker Speaker

	exportPodCIDRs bool
	onChange       func()
	onPeersChanged func(ctx context.Context) error
	isVIP          func(netip.Prefix) bool

	mu       sync.Mutex
	problems []Problem // BGPPeers selecting this node that could not be configured
	names    []string  // BGPPeers configured on the speaker, in SetPeers order
	peers    []Peer    // BGPPeers configured on the speaker with their labels, by name
	known    bool      // peers is set (by SyncPeers or the first Configured)

	// routesMu guards podCIDRs; never held with mu (SyncNodeRoutes calls into the
	// announcer, which calls Configured with its own lock held).
	routesMu sync.Mutex
	podCIDRs []netip.Prefix // pod CIDRs of this node announced by SyncNodeRoutes
}

// New returns a Reconciler.
func New(src Sources, speaker Speaker) *Reconciler {
	return &Reconciler{src: src, speaker: speaker}
}

// ExportPodCIDRs makes the reconciler also announce this node's spec.podCIDRs (so a router
// can reach pods without static routes). Call before the first Sync.
func (r *Reconciler) ExportPodCIDRs(on bool) { r.exportPodCIDRs = on }

// OnChange sets a function called (without locks held) when the configured peers or the
// problems changed; daemon/status uses it to refresh the node's BGPNodeState. Call before
// the first Sync.
func (r *Reconciler) OnChange(fn func()) { r.onChange = fn }

// OnPeersChanged sets a function called (without locks held) when Sync found that the
// configured BGPPeers or their labels changed; it must re-merge the shared VIPs and make
// every Service sync again (peerSelectors route per peer). Its error fails the Sync. Call
// before the first Sync.
func (r *Reconciler) OnPeersChanged(fn func(ctx context.Context) error) { r.onPeersChanged = fn }

// SkipPrefixes sets a function reporting the prefixes the Service announcer originates:
// a pod CIDR equal to one of them is not announced again. Call before the first Sync.
func (r *Reconciler) SkipPrefixes(fn func(netip.Prefix) bool) { r.isVIP = fn }

// Sync is the watch.SyncFunc (the key is always Key): it makes the speaker's allowed
// prefixes, pod CIDR routes and neighbours match the caches.
func (r *Reconciler) Sync(ctx context.Context, _ string) error {
	if err := r.SyncNodeRoutes(ctx); err != nil {
		return err
	}
	return r.SyncPeers(ctx)
}

// SyncPeers makes the speaker's neighbours equal to the BGPPeers whose nodeSelector
// matches this node, and its allowed prefixes equal to the pools' blocks. A peer whose
// password Secret is missing is left out (and reported by Problems) rather than brought
// up without authentication. When the configured peers' names, addresses or labels
// changed, the function set by OnPeersChanged runs (the Services' per-peer routes depend
// on them).
func (r *Reconciler) SyncPeers(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	// Allowed prefixes first: a pool that appeared may be needed by pending announcements,
	// one that disappeared makes the speaker withdraw what fell outside.
	if err := r.SyncAllowedPrefixes(ctx); err != nil {
		return err
	}
	cfgs, infos, problems, err := r.desired()
	if err != nil {
		return err
	}
	if err := r.speaker.SetPeers(ctx, cfgs); err != nil {
		return fmt.Errorf("set bgp peers: %w", err)
	}
	r.mu.Lock()
	problemsChanged := !slices.Equal(r.problems, problems)
	changed := problemsChanged || !slices.EqualFunc(r.names, cfgs, func(n string, c bgp.PeerConfig) bool { return n == c.Name })
	selectionChanged := !r.known || !reflect.DeepEqual(r.peers, infos)
	r.problems = problems
	r.names = r.names[:0]
	for _, c := range cfgs {
		r.names = append(r.names, c.Name)
	}
	r.peers, r.known = infos, true
	r.mu.Unlock()
	if problemsChanged {
		for _, pr := range problems {
			logger.Info("BGPPeer not configured on this node", "peer", pr.Peer, "reason", pr.Message)
		}
	}
	if changed {
		logger.V(2).Info("bgp peers configured", "peers", len(cfgs), "problems", len(problems))
		if r.onChange != nil {
			r.onChange()
		}
	}
	if selectionChanged && r.onPeersChanged != nil {
		logger.V(2).Info("bgp peers or their labels changed, resyncing services")
		return r.onPeersChanged(ctx)
	}
	return nil
}

// Configured returns the peers the Services' routes are computed for, sorted by name:
// those of the last SyncPeers, or before the first one (the daemon syncs every Service
// before the peers on start) what SyncPeers will configure, recorded so that SyncPeers
// does not see a change. The slice must not be modified.
func (r *Reconciler) Configured() ([]Peer, error) {
	r.mu.Lock()
	if r.known {
		defer r.mu.Unlock()
		return r.peers, nil
	}
	r.mu.Unlock()
	_, infos, _, err := r.desired()
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.known {
		r.peers, r.known = infos, true
	}
	return r.peers, nil
}

// desired computes from the caches the neighbours to configure (oldest BGPPeer first),
// the same peers as Peer sorted by name, and the BGPPeers selecting this node
// that cannot be configured.
func (r *Reconciler) desired() ([]bgp.PeerConfig, []Peer, []Problem, error) {
	peers, err := r.src.Peers.List(labels.Everything())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("list bgppeers: %w", err)
	}
	// Oldest first: when two BGPPeers name one address, the older one keeps its session and
	// the newer one is reported, so adding a bad duplicate never disturbs a working peer.
	slices.SortFunc(peers, func(x, y *v1alpha1.BGPPeer) int {
		if c := x.CreationTimestamp.Compare(y.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(x.Name, y.Name)
	})
	var nodeLabels map[string]string
	if r.src.Node != nil {
		if n := r.src.Node(); n != nil {
			nodeLabels = n.Labels
		}
	}
	var cfgs []bgp.PeerConfig
	var infos []Peer
	var problems []Problem
	seen := map[netip.Addr]string{}
	for _, p := range peers {
		ok, err := pools.Matches(p.Spec.NodeSelector, nodeLabels)
		if err != nil {
			problems = append(problems, Problem{p.Name, fmt.Sprintf("invalid nodeSelector: %v", err)})
			continue
		}
		if !ok {
			continue
		}
		cfg, err := r.peerConfig(p)
		if err != nil {
			problems = append(problems, Problem{p.Name, err.Error()})
			continue
		}
		if other, dup := seen[cfg.Address]; dup {
			problems = append(problems, Problem{p.Name, fmt.Sprintf("peer address %s is also used by BGPPeer %s", cfg.Address, other)})
			continue
		}
		seen[cfg.Address] = p.Name
		cfgs = append(cfgs, cfg)
		infos = append(infos, Peer{Name: p.Name, Address: cfg.Address, Labels: maps.Clone(p.Labels)})
	}
	slices.SortFunc(infos, func(x, y Peer) int { return strings.Compare(x.Name, y.Name) })
	return cfgs, infos, problems, nil
}

// SyncAllowedPrefixes sets the speaker's allowed prefixes to the pools' blocks (and the
// exported pod CIDRs). On start the daemon calls it, then syncs every Service, and only
// then Sync, so a graceful-restart peer receives the complete table before End-of-RIB.
// The announcer calls it too when the speaker refuses a prefix (a pool newer than the
// speaker's set).
func (r *Reconciler) SyncAllowedPrefixes(ctx context.Context) error {
	poolList, err := r.src.Pools.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("list loadbalancerippools: %w", err)
	}
	allowed := pools.Prefixes(poolList)
	allowed = append(allowed, r.wantedPodCIDRs()...)
	if err := r.speaker.SetAllowedPrefixes(ctx, allowed); err != nil {
		return fmt.Errorf("set allowed prefixes: %w", err)
	}
	return nil
}

// wantedPodCIDRs returns this node's pod CIDRs when exporting them is on.
func (r *Reconciler) wantedPodCIDRs() []netip.Prefix {
	if !r.exportPodCIDRs || r.src.Node == nil {
		return nil
	}
	n := r.src.Node()
	if n == nil {
		return nil
	}
	var out []netip.Prefix
	for _, c := range n.Spec.PodCIDRs {
		if p, err := netip.ParsePrefix(c); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

// SyncNodeRoutes announces this node's pod CIDRs (when ExportPodCIDRs is on) and withdraws
// the ones it no longer has. Pod CIDRs never overlap VIP pools' host routes in practice;
// a CIDR equal to an announced VIP prefix is skipped.
func (r *Reconciler) SyncNodeRoutes(ctx context.Context) error {
	want := r.wantedPodCIDRs()
	if len(want) > 0 {
		if err := r.SyncAllowedPrefixes(ctx); err != nil {
			return err
		}
	}
	r.routesMu.Lock()
	defer r.routesMu.Unlock()
	for _, p := range r.podCIDRs {
		if slices.Contains(want, p) {
			continue
		}
		if err := r.speaker.Withdraw(ctx, p); err != nil {
			return fmt.Errorf("withdraw pod cidr %s: %w", p, err)
		}
		r.podCIDRs = slices.DeleteFunc(r.podCIDRs, func(q netip.Prefix) bool { return q == p })
	}
	for _, p := range want {
		if slices.Contains(r.podCIDRs, p) {
			continue
		}
		if r.isVIP != nil && r.isVIP(p) {
			continue
		}
		if err := r.speaker.Announce(ctx, bgp.Path{Prefix: p}); err != nil {
			return fmt.Errorf("announce pod cidr %s: %w", p, err)
		}
		r.podCIDRs = append(r.podCIDRs, p)
		klog.FromContext(ctx).V(2).Info("pod CIDR announced", "prefix", p)
	}
	return nil
}

// Problems returns the BGPPeers selecting this node that are not configured, and why.
func (r *Reconciler) Problems() []Problem {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.problems)
}

func (r *Reconciler) peerConfig(p *v1alpha1.BGPPeer) (bgp.PeerConfig, error) {
	s := p.Spec
	addr, err := netip.ParseAddr(s.PeerAddress)
	if err != nil {
		return bgp.PeerConfig{}, fmt.Errorf("peerAddress %q: %w", s.PeerAddress, err)
	}
	cfg := bgp.PeerConfig{
		Name:     p.Name,
		Address:  addr.Unmap(),
		LocalASN: uint32(s.LocalASN),
		PeerASN:  uint32(s.PeerASN),
	}
	if s.PeerPort != nil {
		cfg.Port = uint16(*s.PeerPort)
	}
	if s.SourceAddress != "" {
		src, err := netip.ParseAddr(s.SourceAddress)
		if err != nil {
			return bgp.PeerConfig{}, fmt.Errorf("sourceAddress %q: %w", s.SourceAddress, err)
		}
		cfg.SourceAddress = src.Unmap()
	}
	if err := r.families(&cfg, s.AddressFamilies); err != nil {
		return bgp.PeerConfig{}, err
	}
	if s.EBGPMultihopTTL != nil {
		cfg.EBGPMultihopTTL = uint8(*s.EBGPMultihopTTL)
	}
	if h := s.TTLSecurityHops; h != nil {
		switch {
		case *h < 1 || *h > 254:
			return bgp.PeerConfig{}, fmt.Errorf("ttlSecurityHops %d: must be 1-254", *h)
		case s.EBGPMultihopTTL != nil:
			return bgp.PeerConfig{}, fmt.Errorf("ttlSecurityHops and ebgpMultihopTTL are mutually exclusive")
		}
		cfg.TTLSecurityHops = uint8(*h)
	}
	if s.MaxPrefixes != nil && *s.MaxPrefixes > 0 {
		cfg.MaxPrefixes = uint32(*s.MaxPrefixes)
	}
	if t := s.Timers; t != nil {
		if t.ConnectRetrySeconds != nil {
			cfg.ConnectRetry = time.Duration(*t.ConnectRetrySeconds) * time.Second
		}
		if t.HoldTimeSeconds != nil {
			cfg.HoldTime = time.Duration(*t.HoldTimeSeconds) * time.Second
		}
		if t.KeepaliveTimeSeconds != nil {
			cfg.Keepalive = time.Duration(*t.KeepaliveTimeSeconds) * time.Second
		}
	}
	// Graceful restart is on unless turned off: a restarting bgplbd keeps its routes.
	if gr := s.GracefulRestart; gr == nil || gr.Enabled == nil || *gr.Enabled {
		cfg.GracefulRestart.Enabled = true
		cfg.GracefulRestart.RestartTime = 120 * time.Second
		if gr != nil && gr.RestartTimeSeconds != nil {
			cfg.GracefulRestart.RestartTime = time.Duration(*gr.RestartTimeSeconds) * time.Second
		}
	}
	if b := s.BFD; b != nil {
		cfg.BFD = &bfd.Config{DesiredMinTx: bfd.DefaultInterval, RequiredMinRx: bfd.DefaultInterval, DetectMult: bfd.DefaultDetectMult}
		if b.MinTxMs != nil {
			cfg.BFD.DesiredMinTx = time.Duration(*b.MinTxMs) * time.Millisecond
		}
		if b.MinRxMs != nil {
			cfg.BFD.RequiredMinRx = time.Duration(*b.MinRxMs) * time.Millisecond
		}
		if b.Multiplier != nil {
			cfg.BFD.DetectMult = uint8(min(max(*b.Multiplier, 1), 255))
		}
	}
	if ref := s.PasswordSecretRef; ref != nil {
		if r.src.Secrets == nil {
			return bgp.PeerConfig{}, fmt.Errorf("passwordSecretRef %s: the daemon watches no Secrets", ref.Name)
		}
		sec, err := r.src.Secrets.Get(ref.Name)
		if apierrors.IsNotFound(err) {
			return bgp.PeerConfig{}, fmt.Errorf("passwordSecretRef: secret %q not found in the daemon's namespace", ref.Name)
		}
		if err != nil {
			return bgp.PeerConfig{}, fmt.Errorf("passwordSecretRef: get secret %q: %w", ref.Name, err)
		}
		pw, ok := sec.Data[ref.Key]
		if !ok || len(pw) == 0 {
			return bgp.PeerConfig{}, fmt.Errorf("passwordSecretRef: secret %q has no key %q", ref.Name, ref.Key)
		}
		cfg.Password = string(pw)
	}
	if err := cfg.Validate(); err != nil {
		return bgp.PeerConfig{}, err
	}
	return cfg, nil
}

// families sets cfg.Families from spec.addressFamilies and, when the session carries the
// family that is not the peer address's, the node's address of that family as its next
// hop (first InternalIP, else ExternalIP, of the Node's status).
func (r *Reconciler) families(cfg *bgp.PeerConfig, fams []v1alpha1.AddressFamily) error {
	if len(fams) == 0 {
		return nil
	}
	for _, f := range fams {
		switch f {
		case v1alpha1.AddressFamilyIPv4:
			cfg.Families = append(cfg.Families, bgp.FamilyIPv4)
		case v1alpha1.AddressFamilyIPv6:
			cfg.Families = append(cfg.Families, bgp.FamilyIPv6)
		default:
			return fmt.Errorf("addressFamilies: unknown family %q", f)
		}
	}
	want6 := cfg.Address.Is4() // the other family is IPv6
	other := v1alpha1.AddressFamilyIPv4
	if want6 {
		other = v1alpha1.AddressFamilyIPv6
	}
	if !slices.Contains(fams, other) {
		return nil
	}
	var node *corev1.Node
	if r.src.Node != nil {
		node = r.src.Node()
	}
	if nh, ok := nodeAddress(node, want6); ok {
		cfg.OtherFamilyNextHop = nh
	} else if want6 {
		return fmt.Errorf("addressFamilies: IPv6 on an IPv4 session needs the node's IPv6 address as next hop, and the Node has none in its status")
	}
	return nil
}

// nodeAddress returns the node's first global InternalIP of the family (IPv6 when v6),
// else its first such ExternalIP.
func nodeAddress(n *corev1.Node, v6 bool) (netip.Addr, bool) {
	if n == nil {
		return netip.Addr{}, false
	}
	for _, t := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP} {
		for _, a := range n.Status.Addresses {
			if a.Type != t {
				continue
			}
			ip, err := netip.ParseAddr(a.Address)
			if err != nil {
				continue
			}
			ip = ip.Unmap()
			if ip.Is6() == v6 && ip.IsGlobalUnicast() {
				return ip, true
			}
		}
	}
	return netip.Addr{}, false
}
