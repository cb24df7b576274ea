package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/internal/poll"
)

// sessionSnapshot is what shows a session reset: our EstablishedSince and the test peer's
// flap counter.
type sessionSnapshot struct {
	since time.Time
	flops uint32
}

func snapshotSession(t *testing.T, sp *GoBGPSpeaker, p *testPeer) sessionSnapshot {
	t.Helper()
	st, err := sp.Peers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(st, func(s PeerStatus) bool { return s.Address == p.addr })
	if i < 0 || st[i].State != StateEstablished {
		t.Fatalf("session to %s not established: %+v", p.addr, st)
	}
	var flops uint32
	found := false
	if err := p.s.ListPeer(context.Background(), &api.ListPeerRequest{}, func(peer *api.Peer) {
		found = true
		if peer.State != nil {
			flops = peer.State.Flops
			if peer.State.SessionState != api.PeerState_ESTABLISHED {
				t.Errorf("test peer %s sees the session %s", p.addr, peer.State.SessionState)
			}
		}
	}); err != nil || !found {
		t.Fatalf("list peers of test peer %s: %v (found %t)", p.addr, err, found)
	}
	return sessionSnapshot{since: st[i].EstablishedSince, flops: flops}
}

// exportPolicies returns the names of the per-peer export policies installed, and of
// the defined sets they use.
func exportPolicies(t *testing.T, sp *GoBGPSpeaker) []string {
	t.Helper()
	var out []string
	if err := sp.s.ListPolicy(context.Background(), &api.ListPolicyRequest{}, func(p *api.Policy) {
		if strings.HasPrefix(p.Name, "bgplb-export-") {
			out = append(out, p.Name)
		}
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func exportSets(t *testing.T, sp *GoBGPSpeaker) []string {
	t.Helper()
	var out []string
	for _, typ := range []api.DefinedType{api.DefinedType_NEIGHBOR, api.DefinedType_LARGE_COMMUNITY} {
		if err := sp.s.ListDefinedSet(context.Background(), &api.ListDefinedSetRequest{DefinedType: typ}, func(d *api.DefinedSet) {
			if strings.HasPrefix(d.Name, "bgplb-export-") {
				out = append(out, d.Name)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// waitRIB waits until peer holds prefix with attributes for which check returns "", or
// (check nil) until it does not hold prefix.
func waitRIB(t *testing.T, p *testPeer, name string, prefix netip.Prefix, check func(ribPath) string) {
	t.Helper()
	what := fmt.Sprintf("%s has %s", name, prefix)
	if check == nil {
		what = fmt.Sprintf("%s does not have %s", name, prefix)
	}
	poll.Eventually(t, waitFor, every, what, func() string {
		got, ok := p.lookup(t, prefix)
		switch {
		case check == nil && ok:
			return fmt.Sprintf("still in RIB: %+v", got)
		case check == nil:
			return ""
		case !ok:
			return "not in RIB"
		case len(got.largeCommunities) > 0 && slices.ContainsFunc(got.largeCommunities, func(s string) bool { return strings.HasPrefix(s, "4294967295:") }):
			return fmt.Sprintf("export tag leaked: %v", got.largeCommunities)
		}
		return check(got)
	})
}

// TestPerPeerExport announces with PeerAttributes to two peers: a VIP sent to A only is
// not seen by B, moving it to B withdraws it from A, per-peer attributes differ, paths
// with equal rules share one export policy, and no session is reset along the way.
func TestPerPeerExport(t *testing.T) {
	ctx := context.Background()
	a := newTestPeer(t, routerASN, "198.18.0.1", "127.0.0.1", "127.0.0.1", nodeASN) // eBGP
	b := newTestPeer(t, nodeASN, "198.18.0.2", "127.0.0.2", "127.0.0.1", nodeASN)   // iBGP
	sp := newSpeaker(t)
	if err := sp.SetPeers(ctx, []PeerConfig{peerConfig("a", a, routerASN), peerConfig("b", b, nodeASN)}); err != nil {
		t.Fatal(err)
	}
	waitEstablished(t, sp, a.addr, b.addr)
	sessA, sessB := snapshotSession(t, sp, a), snapshotSession(t, sp, b)

	vip := netip.MustParsePrefix("203.0.113.10/32")
	vip2 := netip.MustParsePrefix("203.0.113.11/32")
	control := netip.MustParsePrefix("203.0.113.99/32")
	commA, _ := ParseCommunity("65000:1")
	commB, _ := ParseCommunity("65000:2")
	hasComm := func(c uint32) func(ribPath) string {
		return func(got ribPath) string {
			if !slices.Equal(got.communities, []uint32{c}) {
				return fmt.Sprintf("communities %v, want [%d]", got.communities, c)
			}
			return ""
		}
	}

	// 1. Only A selected: A gets it; B does not. B's UPDATEs are ordered, so once B has
	// the control prefix announced afterwards, the VIP would have arrived before it.
	if err := sp.Announce(ctx, Path{Prefix: vip, PeerAttributes: map[netip.Addr]Attributes{a.addr: {Communities: []uint32{commA}}}}); err != nil {
		t.Fatalf("announce to A only: %v", err)
	}
	if err := sp.Announce(ctx, Path{Prefix: control}); err != nil {
		t.Fatal(err)
	}
	waitRIB(t, a, "A", vip, hasComm(commA))
	waitRIB(t, b, "B", control, func(ribPath) string { return "" })
	if got, ok := b.lookup(t, vip); ok {
		t.Fatalf("B received a VIP whose advertisement selects only A: %+v", got)
	}
	sentCounts := func(wantA, wantB uint64) func() string {
		return func() string {
			st, _ := sp.Peers(ctx)
			sent := map[netip.Addr]uint64{}
			for _, s := range st {
				sent[s.Address] = s.PrefixesSent
			}
			if sent[a.addr] != wantA || sent[b.addr] != wantB {
				return fmt.Sprintf("sent %v, want A %d and B %d", sent, wantA, wantB)
			}
			return ""
		}
	}
	poll.Eventually(t, waitFor, every, "prefixes sent per peer", sentCounts(2, 1))

	// 2. Move it to B (with local-pref, B is iBGP): A withdraws it, B gets it.
	if err := sp.Announce(ctx, Path{Prefix: vip, PeerAttributes: map[netip.Addr]Attributes{
		b.addr: {Communities: []uint32{commB}, LocalPref: ptr.To[uint32](300)}}}); err != nil {
		t.Fatalf("move to B: %v", err)
	}
	waitRIB(t, b, "B", vip, func(got ribPath) string {
		if s := hasComm(commB)(got); s != "" {
			return s
		}
		if got.localPref == nil || *got.localPref != 300 {
			return fmt.Sprintf("local-pref %v, want 300", got.localPref)
		}
		return ""
	})
	waitRIB(t, a, "A", vip, nil)
	if _, ok := a.lookup(t, control); !ok {
		t.Fatal("A lost the control prefix, which did not change")
	}
	// The counts Peers caches between changes follow the move.
	poll.Eventually(t, waitFor, every, "prefixes sent per peer after the move", sentCounts(1, 2))

	// 3. Both, with different communities (two advertisements selecting one peer each)
	// and a link bandwidth both share.
	both := func(prefix netip.Prefix) Path {
		return Path{Prefix: prefix, PeerAttributes: map[netip.Addr]Attributes{
			a.addr: {Communities: []uint32{commA}, LinkBandwidth: ptr.To[float32](250000)},
			b.addr: {Communities: []uint32{commB}, LinkBandwidth: ptr.To[float32](250000), LargeCommunities: []LargeCommunity{{64513, 7, 7}}},
		}}
	}
	if err := sp.Announce(ctx, both(vip)); err != nil {
		t.Fatal(err)
	}
	if err := sp.Announce(ctx, both(vip2)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []netip.Prefix{vip, vip2} {
		waitRIB(t, a, "A", p, func(got ribPath) string {
			if s := hasComm(commA)(got); s != "" {
				return s
			}
			if got.linkBandwidth == nil || *got.linkBandwidth != 250000 || len(got.largeCommunities) != 0 {
				return fmt.Sprintf("bandwidth %v, large communities %v", got.linkBandwidth, got.largeCommunities)
			}
			return ""
		})
		waitRIB(t, b, "B", p, func(got ribPath) string {
			if s := hasComm(commB)(got); s != "" {
				return s
			}
			if got.localPref != nil && *got.localPref != 100 {
				return fmt.Sprintf("local-pref %v, want the default again", *got.localPref)
			}
			if got.linkBandwidth == nil || *got.linkBandwidth != 250000 || !slices.Equal(got.largeCommunities, []string{"64513:7:7"}) {
				return fmt.Sprintf("bandwidth %v, large communities %v", got.linkBandwidth, got.largeCommunities)
			}
			return ""
		})
	}
	if ps := exportPolicies(t, sp); len(ps) != 1 {
		t.Fatalf("two VIPs with equal per-peer rules use policies %v, want one", ps)
	}
	// A weight change (link bandwidth on every peer) keeps the group.
	changed := both(vip2)
	for addr, at := range changed.PeerAttributes {
		at.LinkBandwidth = ptr.To[float32](500000)
		changed.PeerAttributes[addr] = at
	}
	if err := sp.Announce(ctx, changed); err != nil {
		t.Fatal(err)
	}
	waitRIB(t, a, "A", vip2, func(got ribPath) string {
		if got.linkBandwidth == nil || *got.linkBandwidth != 500000 {
			return fmt.Sprintf("bandwidth %v", got.linkBandwidth)
		}
		return ""
	})
	if ps := exportPolicies(t, sp); len(ps) != 1 {
		t.Fatalf("a bandwidth change left policies %v, want one", ps)
	}

	// 4. Weighted towards A only: the bandwidth differs between peers.
	if err := sp.Announce(ctx, Path{Prefix: vip2, PeerAttributes: map[netip.Addr]Attributes{
		a.addr: {LinkBandwidth: ptr.To[float32](375000)}, b.addr: {}}}); err != nil {
		t.Fatal(err)
	}
	waitRIB(t, a, "A", vip2, func(got ribPath) string {
		if got.linkBandwidth == nil || *got.linkBandwidth != 375000 || len(got.communities) != 0 {
			return fmt.Sprintf("bandwidth %v communities %v", got.linkBandwidth, got.communities)
		}
		return ""
	})
	waitRIB(t, b, "B", vip2, func(got ribPath) string {
		if got.linkBandwidth != nil || len(got.communities) != 0 || len(got.largeCommunities) != 0 {
			return fmt.Sprintf("bandwidth %v communities %v large %v, want none", got.linkBandwidth, got.communities, got.largeCommunities)
		}
		return ""
	})

	// 5. Back to every peer (no PeerAttributes), then withdraw: unused policies go away.
	if err := sp.Announce(ctx, Path{Prefix: vip2, Communities: []uint32{commA}}); err != nil {
		t.Fatal(err)
	}
	waitRIB(t, b, "B", vip2, hasComm(commA))
	if err := sp.Withdraw(ctx, vip); err != nil {
		t.Fatal(err)
	}
	waitRIB(t, a, "A", vip, nil)
	waitRIB(t, b, "B", vip, nil)
	if ps := exportPolicies(t, sp); len(ps) != 0 {
		t.Fatalf("policies %v left after their paths were gone", ps)
	}
	if ds := exportSets(t, sp); len(ds) != 0 {
		t.Fatalf("defined sets %v left after their paths were gone", ds)
	}

	// The pool check applies to per-peer paths too, and the tag cannot be forged.
	outside := Path{Prefix: netip.MustParsePrefix("198.51.100.1/32"), PeerAttributes: map[netip.Addr]Attributes{a.addr: {}}}
	if err := sp.Announce(ctx, outside); !errors.Is(err, ErrPrefixNotAllowed) {
		t.Fatalf("per-peer path outside the pools: %v, want ErrPrefixNotAllowed", err)
	}
	forged := Path{Prefix: vip, PeerAttributes: map[netip.Addr]Attributes{a.addr: {LargeCommunities: []LargeCommunity{{exportTagAdmin, exportTagMarker, 1}}}}}
	if err := sp.Announce(ctx, forged); err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Fatalf("announce with the reserved tag: %v", err)
	}

	// No session was reset by any of it.
	if got := snapshotSession(t, sp, a); got != sessA {
		t.Errorf("session A reset: before %+v, after %+v", sessA, got)
	}
	if got := snapshotSession(t, sp, b); got != sessB {
		t.Errorf("session B reset: before %+v, after %+v", sessB, got)
	}
}

func TestExportPlan(t *testing.T) {
	a, b, c := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3")
	vip := netip.MustParsePrefix("203.0.113.10/32")
	plan := func(m map[netip.Addr]Attributes) (Path, []exportVariant, string) {
		return exportPlan(Path{Prefix: vip, PeerAttributes: m})
	}
	// Shared values stay on the path and out of the key: two VIPs with different
	// communities, both to A and B only, share one group.
	base1, rules1, key1 := plan(map[netip.Addr]Attributes{a: {Communities: []uint32{1}, LinkBandwidth: ptr.To[float32](1)}, b: {Communities: []uint32{1}, LinkBandwidth: ptr.To[float32](1)}})
	_, _, key2 := plan(map[netip.Addr]Attributes{b: {Communities: []uint32{2}}, a: {Communities: []uint32{2}}})
	if key1 != key2 || len(rules1) != 1 || !slices.Equal(rules1[0].peers, []netip.Addr{a, b}) || !slices.Equal(base1.Communities, []uint32{1}) ||
		base1.LinkBandwidth == nil || rules1[0].communities != nil {
		t.Fatalf("plan = %+v %+v %q / %q", base1, rules1, key1, key2)
	}
	_, _, key3 := plan(map[netip.Addr]Attributes{a: {}})
	if key3 == key1 {
		t.Fatal("different peer sets share a key")
	}
	// LOCAL_PREF 0 cannot be set by a policy: it goes on the path; peers without a
	// local-pref get the default set back, others theirs.
	base, rules, _ := plan(map[netip.Addr]Attributes{a: {LocalPref: ptr.To[uint32](0)}, b: {}, c: {LocalPref: ptr.To[uint32](300)}})
	if base.LocalPref == nil || *base.LocalPref != 0 || len(rules) != 3 || rules[0].localPref != 0 || rules[1].localPref != 100 || rules[2].localPref != 300 {
		t.Fatalf("local-pref plan: base %v rules %+v", base.LocalPref, rules)
	}
	// Differing communities are replaced per peer, also by none.
	base, rules, _ = plan(map[netip.Addr]Attributes{a: {Communities: []uint32{5, 5}}, b: {}})
	if base.Communities != nil || len(rules) != 2 || !slices.Equal(*rules[0].communities, []uint32{5}) || rules[1].communities == nil || len(*rules[1].communities) != 0 {
		t.Fatalf("community plan: base %v rules %+v", base.Communities, rules)
	}
}
