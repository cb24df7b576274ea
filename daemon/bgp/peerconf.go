// Peer configuration: SetPeers and the GoBGP neighbour it makes of a PeerConfig.
package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"time"

	api "github.com/osrg/gobgp/v3/api"
)

// SetPeers implements Speaker.
func (g *GoBGPSpeaker) SetPeers(ctx context.Context, peers []PeerConfig) error {
	want := map[netip.Addr]PeerConfig{} // address -> desired config
	for _, pc := range peers {
		if err := pc.Validate(); err != nil {
			return fmt.Errorf("set peers: %w", err)
		}
		pc.Address = pc.Address.Unmap()
		if _, dup := want[pc.Address]; dup {
			return fmt.Errorf("set peers: two peers with address %s", pc.Address)
		}
		want[pc.Address] = pc
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gen++
	if g.s == nil {
		return fmt.Errorf("set peers: %w", ErrNotStarted)
	}
	var errs []error
	for addr, old := range g.peers {
		if nw, ok := want[addr]; ok && sameSession(nw, old) {
			g.peers[addr] = nw // only BFD may differ: the bfd link applies it
			continue
		}
		if err := g.s.DeletePeer(ctx, &api.DeletePeerRequest{Address: addr.String()}); err != nil {
			errs = append(errs, fmt.Errorf("delete peer %s: %w", addr, err))
			continue
		}
		delete(g.peers, addr)
		if g.bfd != nil {
			g.bfd.forget(addr)
		}
		delete(g.states, addr.String())
		g.tracker.clear(addr.String())
		g.logger.Info("Removed BGP peer", "peer", old.Name, "address", addr)
	}
	// The next hops of the other family go in before a peer that needs one is added, so
	// its first UPDATEs already carry them.
	nhErr := g.syncNextHopPolicyLocked(ctx, want)
	if nhErr != nil {
		errs = append(errs, fmt.Errorf("set next-hop policy: %w", nhErr))
	}
	restarting := g.restarting
	g.restarting = false
	for addr, pc := range want {
		if _, ok := g.peers[addr]; ok {
			continue
		}
		if _, _, cross := pc.crossNextHop(); cross && nhErr != nil {
			continue // without its next hop the other family's routes would be unusable
		}
		ap := g.apiPeer(pc)
		if restarting && ap.GracefulRestart != nil {
			ap.GracefulRestart.LocalRestarting = true
			ap.GracefulRestart.DeferralTime = uint32(SelectionDeferral / time.Second)
		}
		if err := g.s.AddPeer(ctx, &api.AddPeerRequest{Peer: ap}); err != nil {
			errs = append(errs, fmt.Errorf("add peer %s (%s): %w", pc.Name, addr, err))
			continue
		}
		g.peers[addr] = pc
		g.logger.Info("Added BGP peer", "peer", pc.Name, "address", addr, "peerASN", pc.PeerASN)
	}
	if err := g.syncBFDLocked(ctx, want); err != nil {
		errs = append(errs, fmt.Errorf("set bfd sessions: %w", err))
	}
	return errors.Join(errs...)
}

// sameSession reports whether a and b make the same GoBGP neighbour (BFD is not part
// of it).
func sameSession(a, b PeerConfig) bool {
	a.BFD, b.BFD = nil, nil
	return reflect.DeepEqual(a, b)
}

// syncBFDLocked starts the BFD link when a peer first asks for BFD and gives it the
// desired peers. g.mu is held.
func (g *GoBGPSpeaker) syncBFDLocked(ctx context.Context, want map[netip.Addr]PeerConfig) error {
	if g.bfd == nil {
		needed := false
		for _, pc := range want {
			needed = needed || pc.BFD != nil
		}
		if !needed {
			return nil
		}
		g.bfd = newBFDLink(g.logger, g.bfdOpts, g.tracker, g.changes)
	}
	g.bfd.srv.Store(g.s)
	return g.bfd.sync(ctx, want)
}

func (g *GoBGPSpeaker) apiPeer(pc PeerConfig) *api.Peer {
	p := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: pc.Address.String(),
			PeerAsn:         pc.PeerASN,
			LocalAsn:        pc.LocalASN,
			AuthPassword:    pc.Password,
			Description:     pc.Name,
		},
		Transport: &api.Transport{RemotePort: uint32(pc.Port)},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry:      uint64(pc.ConnectRetry / time.Second),
			HoldTime:          uint64(pc.HoldTime / time.Second),
			KeepaliveInterval: uint64(pc.Keepalive / time.Second),
		}},
	}
	if pc.Port == 0 {
		p.Transport.RemotePort = 179
	}
	if pc.SourceAddress.IsValid() {
		p.Transport.LocalAddress = pc.SourceAddress.String()
	}
	if pc.EBGPMultihopTTL > 0 {
		p.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(pc.EBGPMultihopTTL)}
	}
	if pc.TTLSecurityHops > 0 {
		// GoBGP sends with TTL 255 and sets IP_MINTTL (IPV6_MINHOPCOUNT) to TtlMin.
		p.TtlSecurity = &api.TtlSecurity{Enabled: true, TtlMin: 256 - uint32(pc.TTLSecurityHops)}
	}
	if pc.ConnectRetry > 0 {
		// retry soon after a reset too, not only after a failed connect
		p.Timers.Config.IdleHoldTimeAfterReset = max(1, uint64(pc.ConnectRetry/time.Second))
	}
	if pc.GracefulRestart.Enabled {
		p.GracefulRestart = &api.GracefulRestart{Enabled: true, RestartTime: uint32(pc.GracefulRestart.RestartTime / time.Second)}
	}
	// One AFI-SAFI per family: GoBGP advertises the multiprotocol capability of each (and
	// the extended next hop capability for IPv4 unicast, RFC 8950), and sends a path of a
	// family only when the peer negotiated it.
	for _, f := range pc.families() {
		family := apiFamily(f)
		afi := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: family, Enabled: true},
			PrefixLimits: &api.PrefixLimit{Family: family, MaxPrefixes: pc.maxPrefixes()}}
		if pc.GracefulRestart.Enabled {
			afi.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
		}
		p.AfiSafis = append(p.AfiSafis, afi)
	}
	return p
}

func apiFamily(f Family) *api.Family {
	if f == FamilyIPv6 {
		return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
	}
	return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
}
