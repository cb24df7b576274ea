package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bgplb/bgplb/daemon/bfd"
)

// Speaker is the node's BGP speaker. Implementations are safe for concurrent use.
type Speaker interface {
	// Start starts the BGP instance with the global settings. It must be called once,
	// before every other method except SetAllowedPrefixes.
	Start(ctx context.Context, g Global) error
	// SetPeers makes the set of neighbours equal to peers (keyed by Address): missing ones
	// are added, changed ones are re-created (one session reset), absent ones are removed
	// (with a Cease). Unchanged neighbours are not touched, so their sessions never flap.
	// An invalid PeerConfig fails the whole call before anything changes.
	SetPeers(ctx context.Context, peers []PeerConfig) error
	// SetAllowedPrefixes sets the prefixes Announce may announce inside of (the VIP pools).
	// Announced prefixes that are no longer inside the set are withdrawn.
	SetAllowedPrefixes(ctx context.Context, allowed []netip.Prefix) error
	// Announce originates p (or replaces the attributes of the same prefix announced
	// before) towards every peer, or with p.PeerAttributes set only towards the peers it
	// lists, each with its own attributes. Moving a prefix between peers or changing one
	// peer's attributes sends UPDATEs and withdrawals to the affected sessions only and
	// resets none. It fails with ErrPrefixNotAllowed when p.Prefix is not inside the
	// allowed set. Idempotent.
	Announce(ctx context.Context, p Path) error
	// Withdraw withdraws prefix. Withdrawing a prefix that is not announced is a no-op.
	Withdraw(ctx context.Context, prefix netip.Prefix) error
	// Announced returns the announced paths, sorted by prefix.
	Announced() []Path
	// Peers returns the status of every configured neighbour, sorted by address.
	Peers(ctx context.Context) ([]PeerStatus, error)
	// EstablishedPeers returns how many sessions are Established (cached, non-blocking).
	EstablishedPeers() int
	// Changes returns a channel that receives (coalesced) a value whenever a session
	// changes state, so the caller can refresh its status objects.
	Changes() <-chan struct{}
	// SetGracefulShutdown adds (on) or removes the GRACEFUL_SHUTDOWN community (RFC 8326)
	// on every path, announced now or later, and re-sends them; it withdraws nothing.
	// A draining node sets it, waits for the routers to move new flows away, then
	// withdraws or stops with graceful=false.
	SetGracefulShutdown(ctx context.Context, on bool) error
	// Stop stops the speaker. graceful=false sends a Cease to every peer (StopBgp), so
	// peers withdraw our routes at once. graceful=true (upgrade or restart with graceful
	// restart) returns without telling the peers; the process must exit right after so the
	// TCP sessions close and GR-capable peers keep our routes as stale.
	Stop(ctx context.Context, graceful bool) error
}

// ErrPrefixNotAllowed is returned by Announce for a prefix outside the allowed set.
var ErrPrefixNotAllowed = errors.New("prefix not inside any allowed prefix")

// ErrNotStarted is returned when a method needing a running speaker is called before
// Start or after Stop.
var ErrNotStarted = errors.New("bgp speaker not started")

// Global holds the instance-wide settings.
type Global struct {
	// ASN is the local AS number (1–4294967295).
	ASN uint32
	// RouterID is the BGP identifier, an IPv4 address.
	RouterID netip.Addr
	// ListenPort is the TCP port to accept sessions on; -1 (the default for nodes) does
	// not listen: sessions are only initiated by us.
	ListenPort int32
	// ListenAddresses restricts where ListenPort listens (default all).
	ListenAddresses []netip.Addr
	// Restarting marks this start as the restart of a speaker that stopped with
	// Stop(ctx, true). Peers with graceful restart enabled that the first SetPeers adds
	// then get the Restart State and Forwarding State bits (RFC 4724 4.1): the helper
	// keeps our stale routes until our End-of-RIB instead of flushing them when the
	// session comes back, and GoBGP defers sending our routes until it has the peers'
	// End-of-RIB or SelectionDeferral (10 s) expires. Safe to set on every start when
	// graceful restart is in use.
	Restarting bool
}

// SelectionDeferral bounds how long a restarting speaker waits for a peer's End-of-RIB
// before sending its routes to that peer.
const SelectionDeferral = 10 * time.Second

// GracefulRestart configures RFC 4724 graceful restart for one peer.
type GracefulRestart struct {
	Enabled bool
	// RestartTime is advertised to the peer: how long it keeps our routes as stale.
	RestartTime time.Duration
}

// PeerConfig is one neighbour.
type PeerConfig struct {
	// Name identifies the peer for humans (e.g. the BGPPeer object name).
	Name string
	// Address is the neighbour's address (the key of the peer).
	Address netip.Addr
	// Port is the neighbour's TCP port; 0 means 179.
	Port uint16
	// LocalASN overrides the global ASN for this session; 0 uses the global one.
	LocalASN uint32
	// PeerASN is the neighbour's AS (required).
	PeerASN uint32
	// SourceAddress is the local address to connect from; invalid (zero) lets the kernel
	// choose.
	SourceAddress netip.Addr
	// EBGPMultihopTTL enables eBGP multihop with this TTL when > 0.
	EBGPMultihopTTL uint8
	// TTLSecurityHops enables GTSM (RFC 5082) when > 0: packets are sent with TTL 255 and
	// only those with a TTL of at least 256-TTLSecurityHops are accepted. Exclusive with
	// EBGPMultihopTTL.
	TTLSecurityHops uint8
	// ConnectRetry, HoldTime and Keepalive are the session timers; 0 uses the defaults
	// (connect-retry 120 s, hold 90 s, keepalive hold/3).
	ConnectRetry time.Duration
	HoldTime     time.Duration
	Keepalive    time.Duration
	// GracefulRestart is advertised when Enabled.
	GracefulRestart GracefulRestart
	// Password enables TCP MD5 authentication when non-empty.
	Password string
	// MaxPrefixes is how many prefixes the peer may send before the session is reset
	// with a Cease notification (PeerStatus.LastError then says so); 0 means
	// DefaultMaxPrefixes. GoBGP keeps what a peer sends in its adj-RIB-in even though
	// the import policy rejects it, so this bounds the memory a peer can take.
	MaxPrefixes uint32
	// Families are the address families the session carries (MP-BGP, RFC 4760); empty
	// means Address's family only. Changing them resets the session (capabilities are
	// only exchanged in OPEN).
	Families []Family
	// OtherFamilyNextHop is the next hop of the routes of the family that is not
	// Address's (the node's own address of that family), set by an export policy for
	// this peer only. IPv6 routes on an IPv4 session need one (GoBGP would otherwise send
	// the IPv4-mapped session address, which routers cannot use); IPv4 routes on an IPv6
	// session without one get the session's local IPv6 address as an RFC 8950 extended
	// next hop. Ignored when Families does not list the other family.
	OtherFamilyNextHop netip.Addr
	// BFD, when set, runs a BFD session with the peer (daemon/bfd): when it detects the
	// path down (no packet for the detection time while Up) the BGP session is shut down
	// at once, and started again when BFD is back Up. A peer signalling Down itself does
	// not shut it down (the peer acts on its own side). Changing only BFD does not reset
	// the BGP session.
	BFD *bfd.Config
}

// Family is an address family a session carries (unicast SAFI).
type Family uint8

// The families of PeerConfig.Families.
const (
	FamilyIPv4 Family = 4
	FamilyIPv6 Family = 6
)

func (f Family) String() string {
	switch f {
	case FamilyIPv4:
		return "ipv4-unicast"
	case FamilyIPv6:
		return "ipv6-unicast"
	}
	return fmt.Sprintf("family(%d)", uint8(f))
}

// families returns the effective families: Families, or Address's family.
func (c PeerConfig) families() []Family {
	if len(c.Families) > 0 {
		return c.Families
	}
	if c.Address.Is4() {
		return []Family{FamilyIPv4}
	}
	return []Family{FamilyIPv6}
}

// otherFamily returns the family that is not Address's and whether the session carries it.
func (c PeerConfig) otherFamily() (Family, bool) {
	other := FamilyIPv6
	if !c.Address.Is4() {
		other = FamilyIPv4
	}
	return other, slices.Contains(c.families(), other)
}

// crossNextHop returns the next hop the export policy sets on the other family's routes
// towards this peer, and false when none is set (one family, or the extended next hop).
func (c PeerConfig) crossNextHop() (Family, netip.Addr, bool) {
	other, carried := c.otherFamily()
	if !carried || !c.OtherFamilyNextHop.IsValid() {
		return 0, netip.Addr{}, false
	}
	return other, c.OtherFamilyNextHop.Unmap(), true
}

// DefaultMaxPrefixes is PeerConfig.MaxPrefixes when unset: nodes import nothing, so a
// router should send nothing at all.
const DefaultMaxPrefixes = 100

// maxPrefixes is the effective MaxPrefixes.
func (c PeerConfig) maxPrefixes() uint32 {
	if c.MaxPrefixes == 0 {
		return DefaultMaxPrefixes
	}
	return c.MaxPrefixes
}

// Validate checks the settings GoBGP would otherwise reject late or silently.
func (c PeerConfig) Validate() error {
	if !c.Address.IsValid() {
		return fmt.Errorf("peer %q: address is not set", c.Name)
	}
	if c.PeerASN == 0 {
		return fmt.Errorf("peer %q: peerASN must be 1-4294967295", c.Name)
	}
	if c.SourceAddress.IsValid() && c.SourceAddress.Is4() != c.Address.Is4() {
		return fmt.Errorf("peer %q: source address %s is not of the family of %s", c.Name, c.SourceAddress, c.Address)
	}
	for i, f := range c.Families {
		if f != FamilyIPv4 && f != FamilyIPv6 {
			return fmt.Errorf("peer %q: unknown address family %s", c.Name, f)
		}
		if slices.Contains(c.Families[:i], f) {
			return fmt.Errorf("peer %q: address family %s listed twice", c.Name, f)
		}
	}
	if other, carried := c.otherFamily(); carried {
		nh := c.OtherFamilyNextHop.Unmap()
		switch {
		case nh.IsValid() && nh.Is4() != (other == FamilyIPv4):
			return fmt.Errorf("peer %q: next hop %s of the %s routes is not of that family", c.Name, nh, other)
		case nh.IsValid() && (nh.IsUnspecified() || nh.IsLinkLocalUnicast()):
			return fmt.Errorf("peer %q: next hop %s of the %s routes must be a global address", c.Name, nh, other)
		case !nh.IsValid() && other == FamilyIPv6:
			return fmt.Errorf("peer %q: %s on an IPv4 session needs the node's IPv6 address as next hop", c.Name, other)
		}
	}
	if c.TTLSecurityHops > 0 && c.EBGPMultihopTTL > 0 {
		return fmt.Errorf("peer %q: ttl security and ebgp multihop are mutually exclusive", c.Name)
	}
	if c.TTLSecurityHops > 254 {
		return fmt.Errorf("peer %q: ttl security hops %d must be 1-254", c.Name, c.TTLSecurityHops)
	}
	if c.HoldTime != 0 && c.HoldTime < 3*time.Second {
		return fmt.Errorf("peer %q: hold time %s must be 0 or at least 3s", c.Name, c.HoldTime)
	}
	if c.Keepalive != 0 && c.HoldTime != 0 && c.Keepalive >= c.HoldTime {
		return fmt.Errorf("peer %q: keepalive %s must be less than hold time %s", c.Name, c.Keepalive, c.HoldTime)
	}
	if c.BFD != nil {
		if err := c.BFD.Validate(); err != nil {
			return fmt.Errorf("peer %q: %w", c.Name, err)
		}
	}
	if c.GracefulRestart.RestartTime < 0 || c.GracefulRestart.RestartTime > 4095*time.Second {
		return fmt.Errorf("peer %q: graceful restart time %s must be 0-4095s", c.Name, c.GracefulRestart.RestartTime)
	}
	return nil
}

// LargeCommunity is an RFC 8092 large community GlobalAdmin:LocalData1:LocalData2.
type LargeCommunity struct {
	GlobalAdmin, LocalData1, LocalData2 uint32
}

func (l LargeCommunity) String() string {
	return fmt.Sprintf("%d:%d:%d", l.GlobalAdmin, l.LocalData1, l.LocalData2)
}

// Path is one prefix to originate with its attributes.
type Path struct {
	// Prefix is the VIP, normally a /32 or /128.
	Prefix netip.Prefix
	// Communities are RFC 1997 communities (ASN<<16 | value); see ParseCommunity.
	Communities []uint32
	// LargeCommunities are RFC 8092 large communities. Those with global administrator
	// 4294967295 (a reserved AS, RFC 7300) and first local part 1650945122 ("bglb" in ASCII) are
	// reserved for the speaker's export tags and refused.
	LargeCommunities []LargeCommunity
	// LocalPref is sent to iBGP peers only (GoBGP strips it towards eBGP peers).
	LocalPref *uint32
	// LinkBandwidth, when set, adds the link-bandwidth extended community (type 0x40,
	// subtype 0x04, bytes per second as float32) for weighted ECMP.
	LinkBandwidth *float32
	// PeerAttributes, when not nil, limits the prefix to the peers it lists (keyed by
	// neighbour address), each receiving it with its own attributes; the four attribute
	// fields above are then not used, and a peer that is not listed does not receive the
	// prefix (a non-nil empty map: no peer does). nil sends the prefix to every peer with
	// the attributes above.
	PeerAttributes map[netip.Addr]Attributes
}

// Attributes are the path attributes one peer receives with a prefix; the fields mean
// what Path's fields of the same name mean.
type Attributes struct {
	Communities      []uint32
	LargeCommunities []LargeCommunity
	LocalPref        *uint32
	LinkBandwidth    *float32
}

// Attributes returns p's attribute fields (what every peer receives when
// p.PeerAttributes is nil).
func (p Path) Attributes() Attributes {
	return Attributes{Communities: p.Communities, LargeCommunities: p.LargeCommunities, LocalPref: p.LocalPref,
		LinkBandwidth: p.LinkBandwidth}
}

// For returns the attributes the peer at addr receives with p, and false when it does not
// receive p.
func (p Path) For(addr netip.Addr) (Attributes, bool) {
	if p.PeerAttributes == nil {
		return p.Attributes(), true
	}
	a, ok := p.PeerAttributes[addr.Unmap()]
	return a, ok
}

// PeerStatus is the observed state of one neighbour.
type PeerStatus struct {
	Name     string
	Address  netip.Addr
	LocalASN uint32
	PeerASN  uint32
	// State is the FSM state: Idle, Connect, Active, OpenSent, OpenConfirm, Established.
	State string
	// EstablishedSince is when the current session came up (zero when not Established).
	EstablishedSince time.Time
	// LastError is the last reason the session failed or was refused, in words, e.g.
	// "connect: connection refused" or "received notification: OPEN: bad peer AS". It is
	// cleared when the session becomes Established.
	LastError string
	// PrefixesSent is the number of prefixes advertised to the peer.
	PrefixesSent uint64
	// PrefixesReceived is the number of prefixes the peer sent that GoBGP holds (its
	// adj-RIB-in; bgplbd's import policy rejects them all, maxPrefixes bounds them).
	PrefixesReceived uint64
	// BFD is the peer's BFD session; nil when PeerConfig.BFD is not set.
	BFD *BFDStatus
}

// StateEstablished is PeerStatus.State of an established session.
const StateEstablished = "Established"

// ParseCommunity parses "ASN:VALUE" (each 0–65535) or one of the well-known names
// no-export, no-advertise, no-export-subconfed, no-peer.
func ParseCommunity(s string) (uint32, error) {
	switch strings.ToLower(s) {
	case "no-export":
		return 0xFFFFFF01, nil
	case "no-advertise":
		return 0xFFFFFF02, nil
	case "no-export-subconfed":
		return 0xFFFFFF03, nil
	case "no-peer":
		return 0xFFFFFF04, nil
	}
	hi, lo, ok := strings.Cut(s, ":")
	if !ok {
		return 0, fmt.Errorf("parse community %q: want ASN:VALUE", s)
	}
	a, err := strconv.ParseUint(hi, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("parse community %q: %w", s, err)
	}
	v, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("parse community %q: %w", s, err)
	}
	return uint32(a)<<16 | uint32(v), nil
}

// ParseLargeCommunity parses "GLOBAL:LOCAL1:LOCAL2" (each 0–4294967295).
func ParseLargeCommunity(s string) (LargeCommunity, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return LargeCommunity{}, fmt.Errorf("parse large community %q: want GLOBAL:LOCAL1:LOCAL2", s)
	}
	var v [3]uint32
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return LargeCommunity{}, fmt.Errorf("parse large community %q: %w", s, err)
		}
		v[i] = uint32(n)
	}
	return LargeCommunity{v[0], v[1], v[2]}, nil
}
