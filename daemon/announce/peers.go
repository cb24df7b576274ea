package announce

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/bfd"
	"github.com/bgplb/bgplb/daemon/bgp"
)

// PeerProblem is a BGPPeer selecting this node that could not be configured.
type PeerProblem struct {
	Peer    string
	Message string
}

// peerInfo is a BGPPeer configured on the speaker, as the advertisements' peerSelectors
// see it.
type peerInfo struct {
	name   string
	addr   netip.Addr
	labels map[string]string
}

// SyncPeers makes the speaker's neighbours equal to the BGPPeers whose nodeSelector
// matches this node, and its allowed prefixes equal to the pools' blocks. A peer whose
// password Secret is missing is left out (and reported by PeerProblems) rather than
// brought up without authentication. When the configured peers' names, addresses or
// labels changed, the function set by OnPeersChanged runs (the Services' per-peer
// routes depend on them).
func (a *Announcer) SyncPeers(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	// Allowed prefixes first: a pool that appeared may be needed by pending announcements,
	// one that disappeared makes the speaker withdraw what fell outside.
	if err := a.SyncAllowedPrefixes(ctx); err != nil {
		return err
	}
	cfgs, infos, problems, err := a.desiredPeers()
	if err != nil {
		return err
	}
	if err := a.speaker.SetPeers(ctx, cfgs); err != nil {
		return fmt.Errorf("set bgp peers: %w", err)
	}
	a.mu.Lock()
	problemsChanged := !slices.Equal(a.peerProblems, problems)
	changed := problemsChanged || !slices.EqualFunc(a.peerNames, cfgs, func(n string, c bgp.PeerConfig) bool { return n == c.Name })
	selectionChanged := !a.peersKnown || !reflect.DeepEqual(a.peers, infos)
	a.peerProblems = problems
	a.peerNames = a.peerNames[:0]
	for _, c := range cfgs {
		a.peerNames = append(a.peerNames, c.Name)
	}
	a.peers, a.peersKnown = infos, true
	var errs []error
	if selectionChanged {
		// A VIP shared by a Service for every peer and one for selected peers merges
		// over the peers; no Service's own path changes when a peer comes or goes.
		for prefix, wants := range a.prefixes {
			if mixedPeerScopes(wants) {
				if err := a.sendLocked(ctx, prefix, wants); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	a.mu.Unlock()
	if problemsChanged {
		for _, pr := range problems {
			logger.Info("BGPPeer not configured on this node", "peer", pr.Peer, "reason", pr.Message)
		}
	}
	if changed {
		logger.V(2).Info("bgp peers configured", "peers", len(cfgs), "problems", len(problems))
		if a.onChange != nil {
			a.onChange()
		}
	}
	if selectionChanged && a.onPeersChanged != nil {
		logger.V(2).Info("bgp peers or their labels changed, resyncing services")
		a.onPeersChanged()
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

// peerSnapshot returns the configured peers the Services' routes are computed for: those
// of the last SyncPeers, or before the first one (the daemon syncs every Service before
// the peers on start) what SyncPeers will configure, recorded so that SyncPeers does
// not see a change.
func (a *Announcer) peerSnapshot() ([]peerInfo, error) {
	a.mu.Lock()
	if a.peersKnown {
		defer a.mu.Unlock()
		return a.peers, nil
	}
	a.mu.Unlock()
	_, infos, _, err := a.desiredPeers()
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.peersKnown {
		a.peers, a.peersKnown = infos, true
	}
	return a.peers, nil
}

// desiredPeers computes from the caches the neighbours to configure (oldest BGPPeer
// first), the same peers as peerInfo sorted by name, and the BGPPeers selecting this node
// that cannot be configured.
func (a *Announcer) desiredPeers() ([]bgp.PeerConfig, []peerInfo, []PeerProblem, error) {
	peers, err := a.src.Peers.List(labels.Everything())
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
	if a.src.Node != nil {
		if n := a.src.Node(); n != nil {
			nodeLabels = n.Labels
		}
	}
	var cfgs []bgp.PeerConfig
	var infos []peerInfo
	var problems []PeerProblem
	seen := map[netip.Addr]string{}
	for _, p := range peers {
		ok, err := SelectorMatches(p.Spec.NodeSelector, nodeLabels)
		if err != nil {
			problems = append(problems, PeerProblem{p.Name, fmt.Sprintf("invalid nodeSelector: %v", err)})
			continue
		}
		if !ok {
			continue
		}
		cfg, err := a.peerConfig(p)
		if err != nil {
			problems = append(problems, PeerProblem{p.Name, err.Error()})
			continue
		}
		if other, dup := seen[cfg.Address]; dup {
			problems = append(problems, PeerProblem{p.Name, fmt.Sprintf("peer address %s is also used by BGPPeer %s", cfg.Address, other)})
			continue
		}
		seen[cfg.Address] = p.Name
		cfgs = append(cfgs, cfg)
		infos = append(infos, peerInfo{name: p.Name, addr: cfg.Address, labels: maps.Clone(p.Labels)})
	}
	slices.SortFunc(infos, func(x, y peerInfo) int { return strings.Compare(x.name, y.name) })
	return cfgs, infos, problems, nil
}

// SyncAllowedPrefixes sets the speaker's allowed prefixes to the pools' blocks. On start
// the daemon calls it, then syncs every Service, and only then SyncPeers, so a
// graceful-restart peer receives the complete table before End-of-RIB.
func (a *Announcer) SyncAllowedPrefixes(ctx context.Context) error {
	pools, err := a.src.Pools.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("list loadbalancerippools: %w", err)
	}
	allowed := PoolPrefixes(pools)
	allowed = append(allowed, a.wantedPodCIDRs()...)
	if err := a.speaker.SetAllowedPrefixes(ctx, allowed); err != nil {
		return fmt.Errorf("set allowed prefixes: %w", err)
	}
	return nil
}

// wantedPodCIDRs returns this node's pod CIDRs when exporting them is on.
func (a *Announcer) wantedPodCIDRs() []netip.Prefix {
	if !a.exportPodCIDRs || a.src.Node == nil {
		return nil
	}
	n := a.src.Node()
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
func (a *Announcer) SyncNodeRoutes(ctx context.Context) error {
	want := a.wantedPodCIDRs()
	if len(want) > 0 {
		if err := a.SyncAllowedPrefixes(ctx); err != nil {
			return err
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range a.podCIDRs {
		if slices.Contains(want, p) {
			continue
		}
		if err := a.speaker.Withdraw(ctx, p); err != nil {
			return fmt.Errorf("withdraw pod cidr %s: %w", p, err)
		}
		a.podCIDRs = slices.DeleteFunc(a.podCIDRs, func(q netip.Prefix) bool { return q == p })
	}
	for _, p := range want {
		if slices.Contains(a.podCIDRs, p) {
			continue
		}
		if _, isVIP := a.sent[p]; isVIP {
			continue
		}
		if err := a.speaker.Announce(ctx, bgp.Path{Prefix: p}); err != nil {
			return fmt.Errorf("announce pod cidr %s: %w", p, err)
		}
		a.podCIDRs = append(a.podCIDRs, p)
		klog.FromContext(ctx).V(2).Info("pod CIDR announced", "prefix", p)
	}
	return nil
}

// PeerProblems returns the BGPPeers selecting this node that are not configured, and why.
func (a *Announcer) PeerProblems() []PeerProblem {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.peerProblems)
}

func (a *Announcer) peerConfig(p *v1alpha1.BGPPeer) (bgp.PeerConfig, error) {
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
		if a.src.Secrets == nil {
			return bgp.PeerConfig{}, fmt.Errorf("passwordSecretRef %s: the daemon watches no Secrets", ref.Name)
		}
		sec, err := a.src.Secrets.Get(ref.Name)
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
