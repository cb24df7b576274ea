package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/internal/poll"
)

// newDualTestPeer is newTestPeer with both unicast families active on the one session.
func newDualTestPeer(t *testing.T, listenAddr, ourAddr string) *testPeer {
	t.Helper()
	port := freePort(t, listenAddr)
	s := server.NewBgpServer()
	go s.Serve()
	ctx := context.Background()
	if err := s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: routerASN, RouterId: "198.18.0.1", ListenPort: int32(port), ListenAddresses: []string{listenAddr},
	}}); err != nil {
		t.Fatalf("start test peer: %v", err)
	}
	t.Cleanup(func() {
		_ = s.StopBgp(context.Background(), &api.StopBgpRequest{}) // test cleanup, nothing to do on error
		s.Stop()
	})
	peer := &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: ourAddr, PeerAsn: nodeASN},
		Transport: &api.Transport{PassiveMode: true, LocalAddress: listenAddr},
		AfiSafis: []*api.AfiSafi{
			{Config: &api.AfiSafiConfig{Family: apiFamily(FamilyIPv4), Enabled: true}},
			{Config: &api.AfiSafiConfig{Family: apiFamily(FamilyIPv6), Enabled: true}},
		},
	}
	if err := s.AddPeer(ctx, &api.AddPeerRequest{Peer: peer}); err != nil {
		t.Fatalf("add our speaker to test peer: %v", err)
	}
	return &testPeer{s: s, addr: netip.MustParseAddr(listenAddr), port: port}
}

func nextHopPolicies(t *testing.T, sp *GoBGPSpeaker) []string {
	t.Helper()
	var out []string
	if err := sp.s.ListPolicy(context.Background(), &api.ListPolicyRequest{}, func(p *api.Policy) {
		if strings.HasPrefix(p.Name, nextHopPolicy) {
			out = append(out, p.Name)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := sp.s.ListDefinedSet(context.Background(), &api.ListDefinedSetRequest{DefinedType: api.DefinedType_NEIGHBOR}, func(d *api.DefinedSet) {
		if strings.HasPrefix(d.Name, nextHopPolicy) {
			out = append(out, d.Name)
		}
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func nextHopIs(want string) func(ribPath) string {
	return func(got ribPath) string {
		if got.nextHop != want {
			return fmt.Sprintf("next hop %s, want %s", got.nextHop, want)
		}
		return ""
	}
}

// TestDualFamilySession: one IPv4 session carries the IPv4 and the IPv6 VIPs, the IPv6
// ones with the node's IPv6 address as next hop (also for per-peer exports), while an
// IPv4-only session next to it gets the IPv4 VIPs only; one IPv6 session carries IPv4
// VIPs with the node's IPv4 address as next hop. Removing the dual sessions removes the
// next-hop policy.
func TestDualFamilySession(t *testing.T) {
	ctx := context.Background()
	dual := newDualTestPeer(t, "127.0.0.1", "127.0.0.1")
	v4only := newTestPeer(t, routerASN, "198.18.0.2", "127.0.0.2", "127.0.0.1", nodeASN)
	dual6 := newDualTestPeer(t, "::1", "::1")
	sp := newSpeaker(t)

	node6 := netip.MustParseAddr("2001:db8:f::11")
	node4 := netip.MustParseAddr("198.18.0.11")
	dualCfg := peerConfig("dual", dual, routerASN)
	dualCfg.Families = []Family{FamilyIPv4, FamilyIPv6}
	dualCfg.OtherFamilyNextHop = node6
	v4Cfg := peerConfig("v4only", v4only, routerASN)
	v4Cfg.SourceAddress = netip.MustParseAddr("127.0.0.1")
	dual6Cfg := peerConfig("dual6", dual6, routerASN)
	dual6Cfg.Families = []Family{FamilyIPv6, FamilyIPv4}
	dual6Cfg.OtherFamilyNextHop = node4
	if err := sp.SetPeers(ctx, []PeerConfig{dualCfg, v4Cfg, dual6Cfg}); err != nil {
		t.Fatal(err)
	}
	waitEstablished(t, sp, dual.addr, v4only.addr, dual6.addr)

	vip4 := netip.MustParsePrefix("203.0.113.10/32")
	vip6 := netip.MustParsePrefix("2001:db8:ffff::10/128")
	vip6only := netip.MustParsePrefix("2001:db8:ffff::11/128") // per-peer export to the dual peer only
	for _, p := range []Path{
		{Prefix: vip4},
		{Prefix: vip6},
		{Prefix: vip6only, PeerAttributes: map[netip.Addr]Attributes{dual.addr: {LinkBandwidth: ptr.To[float32](1000)}}},
	} {
		if err := sp.Announce(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	waitRIB(t, dual, "dual", vip4, nextHopIs("127.0.0.1"))
	waitRIB(t, dual, "dual", vip6, nextHopIs(node6.String()))
	waitRIB(t, dual, "dual", vip6only, func(got ribPath) string {
		if got.linkBandwidth == nil || *got.linkBandwidth != 1000 {
			return fmt.Sprintf("link bandwidth %v, want 1000", got.linkBandwidth)
		}
		return nextHopIs(node6.String())(got)
	})
	waitRIB(t, v4only, "v4only", vip4, nextHopIs("127.0.0.1"))
	waitRIB(t, dual6, "dual6", vip6, nextHopIs("::1"))
	waitRIB(t, dual6, "dual6", vip4, nextHopIs(node4.String()))
	poll.Consistently(t, time.Second, every, "no IPv6 route on the IPv4-only session", func() string {
		for _, p := range []netip.Prefix{vip6, vip6only} {
			if got, ok := v4only.lookup(t, p); ok {
				return fmt.Sprintf("v4only has %s: %+v", p, got)
			}
		}
		return ""
	})
	st, err := sp.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(st, func(s PeerStatus) bool { return s.Address == dual.addr })
	if i < 0 || st[i].PrefixesSent != 3 {
		t.Fatalf("dual peer status %+v, want 3 prefixes sent", st)
	}
	if got := nextHopPolicies(t, sp); len(got) != 3 { // the policy and one neighbour set per peer
		t.Fatalf("next-hop policy objects %v, want the policy and 2 sets", got)
	}

	// Back to the peer address's family only: the session is re-created without IPv6.
	dualCfg.Families, dualCfg.OtherFamilyNextHop = nil, netip.Addr{}
	if err := sp.SetPeers(ctx, []PeerConfig{dualCfg, v4Cfg}); err != nil {
		t.Fatal(err)
	}
	waitEstablished(t, sp, dual.addr)
	waitRIB(t, dual, "dual", vip6, nil)
	waitRIB(t, dual, "dual", vip4, nextHopIs("127.0.0.1"))
	if got := nextHopPolicies(t, sp); len(got) != 0 {
		t.Fatalf("next-hop policy objects left: %v", got)
	}
}

func TestFamilyValidation(t *testing.T) {
	v4 := netip.MustParseAddr("198.18.0.1")
	v6 := netip.MustParseAddr("2001:db8:f::1")
	for name, c := range map[string]struct {
		cfg  PeerConfig
		want string
	}{
		"ipv6 on ipv4 without next hop": {PeerConfig{Address: v4, Families: []Family{FamilyIPv4, FamilyIPv6}}, "needs the node's IPv6 address"},
		"next hop of the wrong family":  {PeerConfig{Address: v4, Families: []Family{FamilyIPv4, FamilyIPv6}, OtherFamilyNextHop: v4}, "not of that family"},
		"link-local next hop": {PeerConfig{Address: v4, Families: []Family{FamilyIPv6},
			OtherFamilyNextHop: netip.MustParseAddr("fe80::1")}, "global address"},
		"family twice":                    {PeerConfig{Address: v6, Families: []Family{FamilyIPv6, FamilyIPv6}}, "listed twice"},
		"unknown family":                  {PeerConfig{Address: v6, Families: []Family{5}}, "unknown address family"},
		"ipv4 on ipv6, extended next hop": {PeerConfig{Address: v6, Families: []Family{FamilyIPv6, FamilyIPv4}}, ""},
		"ipv6 on ipv4 with next hop":      {PeerConfig{Address: v4, Families: []Family{FamilyIPv4, FamilyIPv6}, OtherFamilyNextHop: v6}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			c.cfg.Name, c.cfg.PeerASN = "p", routerASN
			err := c.cfg.Validate()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("Validate: %v, want an error with %q", err, c.want)
			}
		})
	}
}
