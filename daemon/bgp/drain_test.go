package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/bgplb/bgplb/internal/poll"
)

// TestGracefulShutdownCommunity: turning graceful shutdown on re-sends every path with
// 65535:0 added to its own communities (and to paths announced later), off removes it;
// nothing is withdrawn.
func TestGracefulShutdownCommunity(t *testing.T) {
	ctx := context.Background()
	peer := newTestPeer(t, routerASN, "198.18.0.1", "127.0.0.1", "127.0.0.1", nodeASN)
	sp := newSpeaker(t)
	if err := sp.SetPeers(ctx, []PeerConfig{peerConfig("router", peer, routerASN)}); err != nil {
		t.Fatal(err)
	}
	waitEstablished(t, sp, peer.addr)
	a, b := netip.MustParsePrefix("203.0.113.1/32"), netip.MustParsePrefix("203.0.113.2/32")
	own := uint32(64513<<16 | 7)
	if err := sp.Announce(ctx, Path{Prefix: a, Communities: []uint32{own}}); err != nil {
		t.Fatal(err)
	}
	communities := func(prefix netip.Prefix, want ...uint32) func() string {
		return func() string {
			p, ok := peer.lookup(t, prefix)
			if !ok {
				return "not at the peer"
			}
			got := slices.Sorted(slices.Values(p.communities))
			if !slices.Equal(got, want) {
				return fmt.Sprintf("communities %x, want %x", got, want)
			}
			return ""
		}
	}
	poll.Eventually(t, waitFor, every, "path without the community", communities(a, own))
	if err := sp.SetGracefulShutdown(ctx, true); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, waitFor, every, "path re-sent with 65535:0", communities(a, own, GracefulShutdownCommunity))
	if err := sp.Announce(ctx, Path{Prefix: b}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, waitFor, every, "a new path with 65535:0", communities(b, GracefulShutdownCommunity))
	if got := sp.Announced(); len(got) != 2 || len(got[0].Communities) != 1 {
		t.Fatalf("Announced() shows the community or lost a path: %+v", got)
	}
	if err := sp.SetGracefulShutdown(ctx, false); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, waitFor, every, "community gone again", communities(a, own))
	poll.Eventually(t, waitFor, every, "community gone again from the new path", communities(b))
}
