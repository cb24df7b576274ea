// Draining: the GRACEFUL_SHUTDOWN community (RFC 8326) on every path, so routers move
// new flows to the other nodes before this node withdraws (make-before-break).
package bgp

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
)

// GracefulShutdownCommunity is the well-known GRACEFUL_SHUTDOWN community 65535:0 (RFC
// 8326). A router honouring it (FRR does by default; BIRD and others with a policy
// matching it) gives the path the lowest preference, so it leaves the multipath set
// while other nodes announce the prefix, but traffic still has a path if none does.
const GracefulShutdownCommunity uint32 = 0xFFFF0000

// lowestLocalPref is sent to iBGP peers with the community (RFC 8326 section 4).
var lowestLocalPref uint32

// SetGracefulShutdown turns the GRACEFUL_SHUTDOWN community on (or off again) for
// every path announced now or later: the announced paths are sent again at once.
// Nothing is withdrawn; the caller withdraws (or stops with graceful=false) after
// giving the routers time to move new flows away.
func (g *GoBGPSpeaker) SetGracefulShutdown(ctx context.Context, on bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.s == nil {
		return fmt.Errorf("set graceful shutdown: %w", ErrNotStarted)
	}
	if g.gshut == on {
		return nil
	}
	g.gshut = on
	var errs []error
	for _, prefix := range slices.SortedFunc(maps.Keys(g.announced), func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) }) {
		if err := g.announceLocked(ctx, clonePath(g.announced[prefix]), true); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("set graceful shutdown %v: %w", on, err)
	}
	g.logger.Info("Graceful shutdown community set on every path", "on", on, "paths", len(g.announced))
	return nil
}

// withGracefulShutdown returns p with the community (and the lowest local preference,
// which GoBGP sends to iBGP peers only) added to what every peer receives, when on.
func withGracefulShutdown(p Path, on bool) Path {
	if !on {
		return p
	}
	add := func(a Attributes) Attributes {
		if !slices.Contains(a.Communities, GracefulShutdownCommunity) {
			a.Communities = append(slices.Clone(a.Communities), GracefulShutdownCommunity)
		}
		a.LocalPref = &lowestLocalPref
		return a
	}
	p = clonePath(p)
	if p.PeerAttributes == nil {
		a := add(p.Attributes())
		p.Communities, p.LocalPref = a.Communities, a.LocalPref
		return p
	}
	for addr, a := range p.PeerAttributes {
		p.PeerAttributes[addr] = add(a)
	}
	return p
}
