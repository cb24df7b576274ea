package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"github.com/osrg/gobgp/v3/pkg/server"
	"k8s.io/klog/v2"

	"github.com/bgplb/bgplb/daemon/bfd"
)

// asTrans is AS_TRANS (RFC 6793), used in the 2-octet AS field of the link-bandwidth
// community when our AS does not fit.
const asTrans = 23456

// GoBGPSpeaker implements Speaker with an in-process GoBGP server.
type GoBGPSpeaker struct {
	mu         sync.Mutex
	s          *server.BgpServer
	global     Global
	cancel     context.CancelFunc         // stops the peer-event watcher
	allowed    []netip.Prefix             // prefixes Announce may announce inside of
	announced  map[netip.Prefix]Path      // prefix -> path we last added successfully
	groups     map[string]*exportGroup    // export rules key -> installed group (paths with PeerAttributes)
	pathGroup  map[netip.Prefix]string    // prefix -> key of the export group its path uses
	nextGroup  uint32                     // last export group id handed out
	nextHops   map[netip.Addr]nextHopRule // peer -> other family's next hop, as installed (peerconf_nexthop.go)
	peers      map[netip.Addr]PeerConfig  // neighbour address -> config we applied
	restarting bool                       // Global.Restarting, consumed by the first SetPeers
	tracker    *errorTracker
	states     map[string]api.PeerState_SessionState // neighbour address -> last state from WatchEvent
	changes    chan struct{}
	// gen counts what can change GoBGP's advertised counts: paths, peers, peer events.
	// Peers asks GoBGP for those counts (a policy pass over every path per peer, ~3 MB
	// of garbage at 10k paths) only when gen moved since advertisedGen.
	gen           uint64
	advertised    map[string]uint64 // neighbour address -> prefixes sent, as of advertisedGen
	advertisedGen uint64
	logger        klog.Logger
	bfd           *bfdLink    // BFD sessions; nil until a peer asks for BFD
	bfdOpts       bfd.Options // ports of the BFD manager (tests use others)
	gshut         bool        // every path carries GRACEFUL_SHUTDOWN (drain.go)
}

var _ Speaker = &GoBGPSpeaker{}

// NewSpeaker returns a stopped GoBGP speaker that logs through logger (klog contextual).
func NewSpeaker(logger klog.Logger) *GoBGPSpeaker {
	return &GoBGPSpeaker{
		announced: map[netip.Prefix]Path{},
		groups:    map[string]*exportGroup{},
		pathGroup: map[netip.Prefix]string{},
		peers:     map[netip.Addr]PeerConfig{},
		tracker:   newErrorTracker(),
		states:    map[string]api.PeerState_SessionState{},
		changes:   make(chan struct{}, 1),
		logger:    logger.WithName("bgp"),
	}
}

// Start implements Speaker.
func (g *GoBGPSpeaker) Start(ctx context.Context, gl Global) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.s != nil {
		return errors.New("start bgp speaker: already started")
	}
	if gl.ASN == 0 {
		return errors.New("start bgp speaker: ASN must be 1-4294967295")
	}
	if !gl.RouterID.Is4() {
		return fmt.Errorf("start bgp speaker: router ID %q is not an IPv4 address", gl.RouterID)
	}
	if gl.ListenPort == 0 {
		gl.ListenPort = -1
	}
	s := server.NewBgpServer(server.LoggerOption(&klogAdapter{logger: g.logger.WithName("gobgp"), tracker: g.tracker}))
	go s.Serve()
	req := &api.StartBgpRequest{Global: &api.Global{
		Asn:        gl.ASN,
		RouterId:   gl.RouterID.String(),
		ListenPort: gl.ListenPort,
	}}
	for _, a := range gl.ListenAddresses {
		req.Global.ListenAddresses = append(req.Global.ListenAddresses, a.String())
	}
	if err := s.StartBgp(ctx, req); err != nil {
		s.Stop()
		return fmt.Errorf("start bgp speaker: %w", err)
	}
	// We import nothing: every path received from a peer is rejected (DESIGN decision 7).
	// GoBGP runs the global import policy on locally originated paths too, so the policy
	// accepts route type LOCAL and rejects everything else by default.
	if err := setImportPolicy(ctx, s); err != nil {
		_ = s.StopBgp(ctx, &api.StopBgpRequest{}) // best effort: we are failing anyway
		s.Stop()
		return fmt.Errorf("set reject-all import policy: %w", err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	if err := s.WatchEvent(wctx, &api.WatchEventRequest{Peer: &api.WatchEventRequest_Peer{}}, g.onEvent); err != nil {
		cancel()
		_ = s.StopBgp(ctx, &api.StopBgpRequest{}) // best effort: we are failing anyway
		s.Stop()
		return fmt.Errorf("watch bgp peer events: %w", err)
	}
	g.s, g.global, g.cancel, g.restarting = s, gl, cancel, gl.Restarting
	g.nextHops = nil // a new GoBGP server has no policy yet
	g.logger.Info("BGP speaker started", "asn", gl.ASN, "routerID", gl.RouterID, "listenPort", gl.ListenPort)
	return nil
}

// importPolicyName names the global import policy: accept our own paths, reject the rest.
const importPolicyName = "bgplb-import-local-only"

func setImportPolicy(ctx context.Context, s *server.BgpServer) error {
	policy := &api.Policy{
		Name: importPolicyName,
		Statements: []*api.Statement{{
			Name:       "accept-locally-originated",
			Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
			Actions:    &api.Actions{RouteAction: api.RouteAction_ACCEPT},
		}},
	}
	if err := s.AddPolicy(ctx, &api.AddPolicyRequest{Policy: policy}); err != nil {
		return err
	}
	return s.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name:          "global",
		Direction:     api.PolicyDirection_IMPORT,
		Policies:      []*api.Policy{{Name: importPolicyName}},
		DefaultAction: api.RouteAction_REJECT,
	}})
}

func (g *GoBGPSpeaker) onEvent(r *api.WatchEventResponse) {
	pe := r.GetPeer()
	if pe == nil || pe.Peer == nil || pe.Peer.State == nil {
		return
	}
	addr := pe.Peer.State.NeighborAddress
	if addr == "" && pe.Peer.Conf != nil {
		addr = pe.Peer.Conf.NeighborAddress
	}
	state := pe.Peer.State.SessionState
	g.mu.Lock()
	g.gen++
	if pe.Type == api.WatchEventResponse_PeerEvent_STATE || pe.Type == api.WatchEventResponse_PeerEvent_INIT {
		g.states[addr] = state
	}
	g.mu.Unlock()
	if state == api.PeerState_ESTABLISHED {
		g.tracker.clear(addr)
	}
	g.logger.V(2).Info("BGP peer event", "peer", addr, "type", pe.Type.String(), "state", stateName(state))
	select {
	case g.changes <- struct{}{}:
	default:
	}
}

// SetAllowedPrefixes implements Speaker.
func (g *GoBGPSpeaker) SetAllowedPrefixes(ctx context.Context, allowed []netip.Prefix) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	norm := make([]netip.Prefix, 0, len(allowed))
	for _, p := range allowed {
		if !p.IsValid() {
			return fmt.Errorf("set allowed prefixes: invalid prefix %v", p)
		}
		norm = append(norm, p.Masked())
	}
	g.allowed = norm
	var errs []error
	for prefix := range g.announced {
		if g.isAllowed(prefix) {
			continue
		}
		if err := g.withdrawLocked(ctx, prefix); err != nil {
			errs = append(errs, err)
			continue
		}
		g.logger.Info("Withdrew prefix outside the allowed set", "prefix", prefix)
	}
	return errors.Join(errs...)
}

func (g *GoBGPSpeaker) isAllowed(p netip.Prefix) bool {
	for _, a := range g.allowed {
		if a.Addr().Is4() == p.Addr().Is4() && p.Bits() >= a.Bits() && a.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// Announce implements Speaker.
func (g *GoBGPSpeaker) Announce(ctx context.Context, p Path) error {
	if !p.Prefix.IsValid() {
		return fmt.Errorf("announce %v: invalid prefix", p.Prefix)
	}
	p.Prefix = p.Prefix.Masked()
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.announceLocked(ctx, p, false)
}

// announceLocked is Announce with g.mu held; force re-sends a path announced before
// unchanged (the graceful-shutdown community was turned on or off).
func (g *GoBGPSpeaker) announceLocked(ctx context.Context, p Path, force bool) error {
	g.gen++
	if g.s == nil {
		return fmt.Errorf("announce %s: %w", p.Prefix, ErrNotStarted)
	}
	if !g.isAllowed(p.Prefix) {
		return fmt.Errorf("announce %s: %w", p.Prefix, ErrPrefixNotAllowed)
	}
	p, err := normalizePeerPath(p)
	if err != nil {
		return fmt.Errorf("announce %s: %w", p.Prefix, err)
	}
	if old, ok := g.announced[p.Prefix]; ok && reflect.DeepEqual(old, p) && !force {
		return nil
	}
	rib, key := withGracefulShutdown(p, g.gshut), ""
	var grp *exportGroup
	if p.PeerAttributes != nil {
		var rules []exportVariant
		rib, rules, key = exportPlan(rib)
		if grp, err = g.acquireGroup(ctx, key, rules); err != nil {
			return fmt.Errorf("announce %s: %w", p.Prefix, err)
		}
		rib.LargeCommunities = append(slices.Clone(rib.LargeCommunities), grp.tag())
	}
	ap, err := g.apiPath(rib, false)
	if err == nil {
		// Re-adding the same NLRI from the local source implicitly replaces the old path;
		// the old path's group is still installed, so peers that accepted the old path but
		// reject the new one get a withdrawal (see export.go).
		_, err = g.s.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: ap})
	}
	if err != nil {
		if grp != nil {
			g.releaseGroup(ctx, key)
		}
		return fmt.Errorf("announce %s: %w", p.Prefix, err)
	}
	if old, ok := g.pathGroup[p.Prefix]; ok {
		g.releaseGroup(ctx, old)
		delete(g.pathGroup, p.Prefix)
	}
	if grp != nil {
		g.pathGroup[p.Prefix] = key
	}
	g.announced[p.Prefix] = clonePath(p)
	return nil
}

// normalizePeerPath refuses the reserved tag communities and unmaps the peer addresses.
func normalizePeerPath(p Path) (Path, error) {
	check := func(ls []LargeCommunity) error {
		for _, l := range ls {
			if isExportTag(l) {
				return fmt.Errorf("large community %s is reserved for export tags", l)
			}
		}
		return nil
	}
	if err := check(p.LargeCommunities); err != nil {
		return p, err
	}
	if p.PeerAttributes == nil {
		return p, nil
	}
	m := make(map[netip.Addr]Attributes, len(p.PeerAttributes))
	for a, at := range p.PeerAttributes {
		if !a.IsValid() {
			return p, errors.New("invalid peer address in PeerAttributes")
		}
		if err := check(at.LargeCommunities); err != nil {
			return p, err
		}
		m[a.Unmap()] = at
	}
	p.PeerAttributes = m
	return p, nil
}

// Withdraw implements Speaker.
func (g *GoBGPSpeaker) Withdraw(ctx context.Context, prefix netip.Prefix) error {
	if !prefix.IsValid() {
		return fmt.Errorf("withdraw %v: invalid prefix", prefix)
	}
	prefix = prefix.Masked()
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.announced[prefix]; !ok {
		return nil
	}
	if g.s == nil {
		return fmt.Errorf("withdraw %s: %w", prefix, ErrNotStarted)
	}
	return g.withdrawLocked(ctx, prefix)
}

// withdrawLocked withdraws an announced prefix and forgets it. Caller holds g.mu.
func (g *GoBGPSpeaker) withdrawLocked(ctx context.Context, prefix netip.Prefix) error {
	g.gen++
	p := g.announced[prefix]
	if p.PeerAttributes != nil {
		// GoBGP deletes by NLRI and source; the attributes do not matter.
		p = Path{Prefix: prefix}
	}
	if err := g.deletePath(ctx, p); err != nil {
		return err
	}
	delete(g.announced, prefix)
	if key, ok := g.pathGroup[prefix]; ok {
		g.releaseGroup(ctx, key)
		delete(g.pathGroup, prefix)
	}
	return nil
}

// deletePath withdraws by path (NLRI), never by UUID. Caller holds g.mu.
func (g *GoBGPSpeaker) deletePath(ctx context.Context, p Path) error {
	ap, err := g.apiPath(p, true)
	if err != nil {
		return fmt.Errorf("withdraw %s: %w", p.Prefix, err)
	}
	if err := g.s.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Family: ap.Family, Path: ap}); err != nil {
		return fmt.Errorf("withdraw %s: %w", p.Prefix, err)
	}
	return nil
}

// Announced implements Speaker.
func (g *GoBGPSpeaker) Announced() []Path {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Path, 0, len(g.announced))
	for _, p := range g.announced {
		out = append(out, clonePath(p))
	}
	slices.SortFunc(out, func(a, b Path) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	return out
}

// apiPath converts p to a GoBGP API path with an unspecified next hop (GoBGP puts the
// session's local address there).
func (g *GoBGPSpeaker) apiPath(p Path, withdraw bool) (*api.Path, error) {
	addr := p.Prefix.Addr()
	bits := uint8(p.Prefix.Bits())
	var nlri bgp.AddrPrefixInterface
	family := &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	if addr.Is4() {
		nlri = bgp.NewIPAddrPrefix(bits, addr.String())
		attrs = append(attrs, bgp.NewPathAttributeNextHop("0.0.0.0"))
	} else {
		family.Afi = api.Family_AFI_IP6
		nlri = bgp.NewIPv6AddrPrefix(bits, addr.String())
		attrs = append(attrs, bgp.NewPathAttributeMpReachNLRI("::", []bgp.AddrPrefixInterface{nlri}))
	}
	if len(p.Communities) > 0 {
		attrs = append(attrs, bgp.NewPathAttributeCommunities(slices.Clone(p.Communities)))
	}
	if len(p.LargeCommunities) > 0 {
		lcs := make([]*bgp.LargeCommunity, 0, len(p.LargeCommunities))
		for _, l := range p.LargeCommunities {
			lcs = append(lcs, bgp.NewLargeCommunity(l.GlobalAdmin, l.LocalData1, l.LocalData2))
		}
		attrs = append(attrs, bgp.NewPathAttributeLargeCommunities(lcs))
	}
	if p.LocalPref != nil {
		attrs = append(attrs, bgp.NewPathAttributeLocalPref(*p.LocalPref))
	}
	if p.LinkBandwidth != nil {
		attrs = append(attrs, bgp.NewPathAttributeExtendedCommunities([]bgp.ExtendedCommunityInterface{
			bgp.NewLinkBandwidthExtended(g.linkBandwidthAS(), *p.LinkBandwidth),
		}))
	}
	apiNLRI, err := apiutil.MarshalNLRI(nlri)
	if err != nil {
		return nil, fmt.Errorf("marshal NLRI: %w", err)
	}
	apiAttrs, err := apiutil.MarshalPathAttributes(attrs)
	if err != nil {
		return nil, fmt.Errorf("marshal path attributes: %w", err)
	}
	return &api.Path{Family: family, Nlri: apiNLRI, Pattrs: apiAttrs, IsWithdraw: withdraw}, nil
}

// Peers implements Speaker.
func (g *GoBGPSpeaker) Peers(ctx context.Context) ([]PeerStatus, error) {
	g.mu.Lock()
	s := g.s
	configs := make(map[string]PeerConfig, len(g.peers))
	for a, pc := range g.peers {
		configs[a.String()] = pc
	}
	globalASN := g.global.ASN
	bfdl := g.bfd
	gen := g.gen
	cached := g.advertised
	if g.advertisedGen != gen {
		cached = nil
	}
	announced4, announced6 := 0, 0
	for prefix := range g.announced {
		if prefix.Addr().Is4() {
			announced4++
		} else {
			announced6++
		}
	}
	g.mu.Unlock()
	if s == nil {
		return nil, fmt.Errorf("list peers: %w", ErrNotStarted)
	}
	var out []PeerStatus
	fresh := map[string]uint64{}
	err := s.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: cached == nil}, func(p *api.Peer) {
		if p.Conf == nil || p.State == nil {
			return
		}
		addr, _ := netip.ParseAddr(p.Conf.NeighborAddress)
		pc := configs[p.Conf.NeighborAddress]
		st := PeerStatus{
			Name:      pc.Name,
			Address:   addr,
			LocalASN:  p.Conf.LocalAsn,
			PeerASN:   p.Conf.PeerAsn,
			State:     stateName(p.State.SessionState),
			LastError: g.tracker.get(p.Conf.NeighborAddress),
		}
		if strings.HasPrefix(st.LastError, maxPrefixMarker) {
			st.LastError = maxPrefixError(st.LastError, pc.maxPrefixes())
		}
		if st.LocalASN == 0 {
			st.LocalASN = globalASN
		}
		st.BFD = bfdl.status(addr)
		if p.State.SessionState == api.PeerState_ESTABLISHED {
			st.LastError = ""
			if p.Timers != nil && p.Timers.State != nil && p.Timers.State.Uptime != nil {
				st.EstablishedSince = p.Timers.State.Uptime.AsTime()
			}
		}
		for _, a := range p.AfiSafis {
			if a.State != nil {
				st.PrefixesReceived += a.State.Received // always counted by GoBGP (adj-RIB-in)
			}
		}
		if cached != nil {
			st.PrefixesSent = cached[p.Conf.NeighborAddress]
			out = append(out, st)
			return
		}
		// GoBGP's Advertised counts the End-of-RIB marker too when graceful restart is
		// negotiated; we never send more than what we announced in the family.
		for _, a := range p.AfiSafis {
			if a.State == nil || a.State.Family == nil {
				continue
			}
			limit := uint64(announced4)
			if a.State.Family.Afi == api.Family_AFI_IP6 {
				limit = uint64(announced6)
			}
			st.PrefixesSent += min(a.State.Advertised, limit)
		}
		fresh[p.Conf.NeighborAddress] = st.PrefixesSent
		out = append(out, st)
	})
	if err != nil {
		return nil, fmt.Errorf("list peers: %w", err)
	}
	if cached == nil {
		g.mu.Lock()
		if g.gen == gen { // nothing changed while GoBGP counted
			g.advertised, g.advertisedGen = fresh, gen
		}
		g.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b PeerStatus) int { return a.Address.Compare(b.Address) })
	return out, nil
}

// EstablishedPeers implements Speaker (and eligibility.SessionState).
func (g *GoBGPSpeaker) EstablishedPeers() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for addr, st := range g.states {
		a, err := netip.ParseAddr(addr)
		if err != nil {
			continue
		}
		if _, configured := g.peers[a]; configured && st == api.PeerState_ESTABLISHED {
			n++
		}
	}
	return n
}

// Changes implements Speaker.
func (g *GoBGPSpeaker) Changes() <-chan struct{} { return g.changes }

// Stop implements Speaker.
func (g *GoBGPSpeaker) Stop(ctx context.Context, graceful bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gen++
	if g.s == nil {
		return nil
	}
	g.cancel()
	if graceful {
		// BFD stays quiet too (no AdminDown): the router sees the same loss as for a
		// crash, within the detection time. Nor may a BFD event disable a peer now.
		if g.bfd != nil {
			g.bfd.srv.Store(nil)
		}
		// No StopBgp: it would send a Cease to every peer and defeat graceful restart.
		// The process exits next; the kernel closes the sessions without a NOTIFICATION.
		g.logger.Info("BGP speaker stopping for a graceful restart; peers keep our routes as stale")
		g.s = nil
		return nil
	}
	err := g.s.StopBgp(ctx, &api.StopBgpRequest{})
	g.bfd.close() // AdminDown to every BFD peer
	g.bfd = nil
	g.s.Stop()
	g.s = nil
	g.announced = map[netip.Prefix]Path{}
	g.groups = map[string]*exportGroup{}
	g.pathGroup = map[netip.Prefix]string{}
	g.peers = map[netip.Addr]PeerConfig{}
	if err != nil {
		return fmt.Errorf("stop bgp speaker: %w", err)
	}
	return nil
}

func stateName(s api.PeerState_SessionState) string {
	switch s {
	case api.PeerState_IDLE:
		return "Idle"
	case api.PeerState_CONNECT:
		return "Connect"
	case api.PeerState_ACTIVE:
		return "Active"
	case api.PeerState_OPENSENT:
		return "OpenSent"
	case api.PeerState_OPENCONFIRM:
		return "OpenConfirm"
	case api.PeerState_ESTABLISHED:
		return StateEstablished
	}
	return "Unknown"
}

func clonePath(p Path) Path {
	if p.PeerAttributes != nil {
		m := make(map[netip.Addr]Attributes, len(p.PeerAttributes))
		for a, at := range p.PeerAttributes {
			c := clonePath(Path{Communities: at.Communities, LargeCommunities: at.LargeCommunities,
				LocalPref: at.LocalPref, LinkBandwidth: at.LinkBandwidth})
			m[a] = c.Attributes()
		}
		p.PeerAttributes = m
	}
	p.Communities = slices.Clone(p.Communities)
	p.LargeCommunities = slices.Clone(p.LargeCommunities)
	if p.LocalPref != nil {
		v := *p.LocalPref
		p.LocalPref = &v
	}
	if p.LinkBandwidth != nil {
		v := *p.LinkBandwidth
		p.LinkBandwidth = &v
	}
	return p
}
