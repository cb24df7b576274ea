package bgptest

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/bgplb/bgplb/daemon/bgp"
)

// Fake is an in-memory bgp.Speaker. The zero value is not usable; use NewFake.
type Fake struct {
	mu        sync.Mutex
	started   bool
	stopped   bool
	graceful  bool
	gshut     bool // SetGracefulShutdown
	global    bgp.Global
	allowed   []netip.Prefix
	announced map[netip.Prefix]bgp.Path // prefix -> path
	peers     []bgp.PeerConfig
	status    map[netip.Addr]bgp.PeerStatus // address -> status set by the test
	changes   chan struct{}
	calls     []string // "Announce 203.0.113.1/32", "Withdraw ...", "SetPeers 2"
	// Err, when set, is returned (once) by the next mutating call.
	Err error
}

var _ bgp.Speaker = &Fake{}

// NewFake returns a Fake that is not started.
func NewFake() *Fake {
	return &Fake{announced: map[netip.Prefix]bgp.Path{}, status: map[netip.Addr]bgp.PeerStatus{}, changes: make(chan struct{}, 1)}
}

func (f *Fake) takeErr() error {
	err := f.Err
	f.Err = nil
	return err
}

// Start implements bgp.Speaker.
func (f *Fake) Start(_ context.Context, g bgp.Global) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeErr(); err != nil {
		return err
	}
	if f.started {
		return fmt.Errorf("start bgp speaker: already started")
	}
	f.started, f.global = true, g
	return nil
}

// SetPeers implements bgp.Speaker.
func (f *Fake) SetPeers(_ context.Context, peers []bgp.PeerConfig) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("SetPeers %d", len(peers)))
	if err := f.takeErr(); err != nil {
		return err
	}
	for _, p := range peers {
		if err := p.Validate(); err != nil {
			return fmt.Errorf("set peers: %w", err)
		}
	}
	if !f.started {
		return fmt.Errorf("set peers: %w", bgp.ErrNotStarted)
	}
	f.peers = slices.Clone(peers)
	return nil
}

// SetAllowedPrefixes implements bgp.Speaker.
func (f *Fake) SetAllowedPrefixes(_ context.Context, allowed []netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.takeErr(); err != nil {
		return err
	}
	f.allowed = slices.Clone(allowed)
	for p := range f.announced {
		if !f.isAllowed(p) {
			delete(f.announced, p)
		}
	}
	return nil
}

func (f *Fake) isAllowed(p netip.Prefix) bool {
	for _, a := range f.allowed {
		if a.Addr().Is4() == p.Addr().Is4() && p.Bits() >= a.Bits() && a.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// Announce implements bgp.Speaker.
func (f *Fake) Announce(_ context.Context, p bgp.Path) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "Announce "+p.Prefix.String())
	if err := f.takeErr(); err != nil {
		return err
	}
	if !f.started {
		return fmt.Errorf("announce %s: %w", p.Prefix, bgp.ErrNotStarted)
	}
	if !f.isAllowed(p.Prefix) {
		return fmt.Errorf("announce %s: %w", p.Prefix, bgp.ErrPrefixNotAllowed)
	}
	f.announced[p.Prefix] = p
	return nil
}

// Withdraw implements bgp.Speaker.
func (f *Fake) Withdraw(_ context.Context, prefix netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "Withdraw "+prefix.String())
	if err := f.takeErr(); err != nil {
		return err
	}
	delete(f.announced, prefix)
	return nil
}

// Announced implements bgp.Speaker.
func (f *Fake) Announced() []bgp.Path {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]bgp.Path, 0, len(f.announced))
	for _, p := range f.announced {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b bgp.Path) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	return out
}

// Peers implements bgp.Speaker: the configured peers, with any status set by SetStatus
// (default state "Active").
func (f *Fake) Peers(context.Context) ([]bgp.PeerStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]bgp.PeerStatus, 0, len(f.peers))
	for _, p := range f.peers {
		st, ok := f.status[p.Address]
		if !ok {
			st = bgp.PeerStatus{State: "Active"}
		}
		st.Name, st.Address, st.PeerASN = p.Name, p.Address, p.PeerASN
		st.LocalASN = p.LocalASN
		if st.LocalASN == 0 {
			st.LocalASN = f.global.ASN
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b bgp.PeerStatus) int { return a.Address.Compare(b.Address) })
	return out, nil
}

// SetStatus sets the status Peers reports for addr and signals Changes.
func (f *Fake) SetStatus(addr netip.Addr, st bgp.PeerStatus) {
	f.mu.Lock()
	f.status[addr] = st
	f.mu.Unlock()
	select {
	case f.changes <- struct{}{}:
	default:
	}
}

// EstablishedPeers implements bgp.Speaker.
func (f *Fake) EstablishedPeers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, p := range f.peers {
		if f.status[p.Address].State == bgp.StateEstablished {
			n++
		}
	}
	return n
}

// Changes implements bgp.Speaker.
func (f *Fake) Changes() <-chan struct{} { return f.changes }

// Stop implements bgp.Speaker.
func (f *Fake) Stop(_ context.Context, graceful bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped, f.graceful, f.started = true, graceful, false
	if !graceful {
		f.announced = map[netip.Prefix]bgp.Path{}
	}
	return nil
}

// SetGracefulShutdown implements bgp.Speaker.
func (f *Fake) SetGracefulShutdown(_ context.Context, on bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gshut = on
	return nil
}

// GracefulShutdown reports whether the graceful-shutdown community is on.
func (f *Fake) GracefulShutdown() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gshut
}

// Stopped reports whether Stop was called and whether it was graceful.
func (f *Fake) Stopped() (stopped, graceful bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stopped, f.graceful
}

// ConfiguredPeers returns the peers of the last successful SetPeers.
func (f *Fake) ConfiguredPeers() []bgp.PeerConfig {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.peers)
}

// Calls returns the recorded calls in order.
func (f *Fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}
