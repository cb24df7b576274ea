// BFD for the speaker's peers: a bfd.Manager with one session per peer whose
// PeerConfig.BFD is set; a session whose detection time expires while Up disables the GoBGP neighbour
// at once (so the node stops sending on a dead path and the router, which runs BFD
// too, drops the node's routes), and its coming back Up enables it again.
package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
	"k8s.io/klog/v2"

	"github.com/bgplb/bgplb/daemon/bfd"
)

// BFDStatus is the state of a peer's BFD session.
type BFDStatus struct {
	// State is Down, Init, Up or AdminDown.
	State string
	// Diag says why the session last left Up (e.g. ControlDetectionTimeExpired).
	Diag string
	bfd.Counters
}

// bfdLink runs the BFD sessions and turns BGP neighbours off and on with them. Its
// callback runs on the BFD sessions' goroutines and never takes GoBGPSpeaker.mu, which
// SetPeers holds while it removes sessions (and waits for their goroutines).
type bfdLink struct {
	mgr     *bfd.Manager
	srv     atomic.Pointer[server.BgpServer]
	tracker *errorTracker
	changes chan struct{}
	logger  klog.Logger

	mu       sync.Mutex
	last     map[netip.Addr]bfd.State // peer -> last BFD state reported
	disabled map[netip.Addr]bool      // peer -> we disabled its BGP neighbour for BFD
}

func newBFDLink(logger klog.Logger, opts bfd.Options, tracker *errorTracker, changes chan struct{}) *bfdLink {
	l := &bfdLink{tracker: tracker, changes: changes, logger: logger, last: map[netip.Addr]bfd.State{},
		disabled: map[netip.Addr]bool{}}
	opts.OnChange = l.onChange
	l.mgr = bfd.NewManager(logger, opts)
	return l
}

func (l *bfdLink) onChange(st bfd.Status) {
	l.mu.Lock()
	prev := l.last[st.Peer]
	l.last[st.Peer] = st.State
	// Only our own detection (Up -> Down, detection time expired) is a failure of the
	// path. A peer saying Down or AdminDown just reached us, so the path works: the peer
	// acts on its own view (a router that lost our packets drops the BGP session
	// itself), and FRR re-creates its BFD session, saying Down, each time a BGP session
	// comes up (it learns the local address then) — disabling BGP for that would flap
	// every new session once.
	disable := prev == bfd.StateUp && st.State == bfd.StateDown && st.Diag == bfd.DiagDetectExpired
	enable := st.State == bfd.StateUp && l.disabled[st.Peer]
	if disable {
		l.disabled[st.Peer] = true
	}
	if enable {
		delete(l.disabled, st.Peer)
	}
	l.mu.Unlock()
	s := l.srv.Load()
	ctx := context.Background()
	switch {
	case s == nil:
	case disable:
		msg := fmt.Sprintf("BFD session down (%s)", st.Diag)
		l.tracker.set(st.Peer.String(), msg)
		if err := s.DisablePeer(ctx, &api.DisablePeerRequest{Address: st.Peer.String(), Communication: msg}); err != nil {
			l.logger.Error(err, "Disable BGP peer after BFD down failed", "peer", st.Peer)
		} else {
			l.logger.Info("BGP peer disabled: BFD session down", "peer", st.Peer, "diag", st.Diag)
		}
	case enable:
		if err := s.EnablePeer(ctx, &api.EnablePeerRequest{Address: st.Peer.String()}); err != nil {
			l.logger.Error(err, "Enable BGP peer after BFD up failed", "peer", st.Peer)
		} else {
			l.logger.Info("BGP peer enabled: BFD session up", "peer", st.Peer)
		}
	}
	select {
	case l.changes <- struct{}{}:
	default:
	}
}

// forget drops what the link knows of a neighbour that was deleted or re-created
// (a new GoBGP neighbour starts enabled).
func (l *bfdLink) forget(addr netip.Addr) {
	l.mu.Lock()
	delete(l.disabled, addr)
	l.mu.Unlock()
}

// sync makes the BFD sessions those of the peers in want with BFD set. A peer whose
// BFD was turned off while its neighbour was disabled for BFD is enabled again.
func (l *bfdLink) sync(ctx context.Context, want map[netip.Addr]PeerConfig) error {
	var firstErr error
	for _, st := range l.mgr.Sessions() {
		if pc, ok := want[st.Peer]; ok && pc.BFD != nil {
			continue
		}
		l.mgr.Remove(st.Peer)
		l.mu.Lock()
		wasDisabled := l.disabled[st.Peer]
		delete(l.disabled, st.Peer)
		delete(l.last, st.Peer)
		l.mu.Unlock()
		if _, ok := want[st.Peer]; ok && wasDisabled {
			if s := l.srv.Load(); s != nil {
				if err := s.EnablePeer(ctx, &api.EnablePeerRequest{Address: st.Peer.String()}); err != nil && firstErr == nil {
					firstErr = fmt.Errorf("enable peer %s: %w", st.Peer, err)
				}
			}
		}
	}
	for addr, pc := range want {
		if pc.BFD == nil {
			continue
		}
		if err := l.mgr.Set(addr, pc.SourceAddress, *pc.BFD); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// status returns the BFD state of addr's session, nil when it has none.
func (l *bfdLink) status(addr netip.Addr) *BFDStatus {
	if l == nil {
		return nil
	}
	st, ok := l.mgr.Status(addr)
	if !ok {
		return nil
	}
	return &BFDStatus{State: st.State.String(), Diag: st.Diag.String(), Counters: st.Counters}
}

func (l *bfdLink) close() {
	if l == nil {
		return
	}
	l.srv.Store(nil)
	l.mgr.Close()
}
