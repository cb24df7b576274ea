package bgp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"github.com/osrg/gobgp/v3/pkg/server"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/internal/poll"
)

const (
	nodeASN   = 64513
	routerASN = 64512
	waitFor   = 20 * time.Second
	every     = 100 * time.Millisecond // how often the tests poll
)

var vipPool = netip.MustParsePrefix("203.0.113.0/24")

// freePort returns a TCP port that was free on addr a moment ago.
func freePort(t *testing.T, addr string) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatalf("find free port: %v", err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

// testPeer is a plain GoBGP router listening on listenAddr:port that accepts our speaker
// (connecting from ourAddr) passively and imports everything (GoBGP's default).
type testPeer struct {
	s    *server.BgpServer
	addr netip.Addr
	port uint16
}

func newTestPeer(t *testing.T, asn uint32, routerID, listenAddr string, ourAddr string, ourASN uint32) *testPeer {
	t.Helper()
	return newTestPeerGR(t, asn, routerID, listenAddr, ourAddr, ourASN, false)
}

// newTestPeerGR is newTestPeer, optionally a graceful-restart helper for our speaker.
func newTestPeerGR(t *testing.T, asn uint32, routerID, listenAddr string, ourAddr string, ourASN uint32, gracefulRestart bool) *testPeer {
	t.Helper()
	port := freePort(t, listenAddr)
	s := server.NewBgpServer()
	go s.Serve()
	ctx := context.Background()
	if err := s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: asn, RouterId: routerID, ListenPort: int32(port), ListenAddresses: []string{listenAddr},
	}}); err != nil {
		t.Fatalf("start test peer: %v", err)
	}
	t.Cleanup(func() {
		_ = s.StopBgp(context.Background(), &api.StopBgpRequest{}) // test cleanup, nothing to do on error
		s.Stop()
	})
	family := &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	if strings.Contains(ourAddr, ":") {
		family.Afi = api.Family_AFI_IP6
	}
	peer := &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: ourAddr, PeerAsn: ourASN},
		Transport: &api.Transport{PassiveMode: true, LocalAddress: listenAddr},
		AfiSafis:  []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: family, Enabled: true}}},
	}
	if gracefulRestart {
		peer.GracefulRestart = &api.GracefulRestart{Enabled: true, RestartTime: 120}
		peer.AfiSafis[0].MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
	}
	if err := s.AddPeer(ctx, &api.AddPeerRequest{Peer: peer}); err != nil {
		t.Fatalf("add our speaker to test peer: %v", err)
	}
	return &testPeer{s: s, addr: netip.MustParseAddr(listenAddr), port: port}
}

// ribPath is what a test peer holds for one prefix.
type ribPath struct {
	nextHop          string
	communities      []uint32
	largeCommunities []string
	localPref        *uint32
	linkBandwidth    *float32
	asPath           string
	stale            bool
}

// lookup returns the best path the peer's global RIB holds for prefix, if any.
func (p *testPeer) lookup(t *testing.T, prefix netip.Prefix) (ribPath, bool) {
	t.Helper()
	return listRIB(t, p.s, api.TableType_GLOBAL, "", prefix)
}

func listRIB(t *testing.T, s *server.BgpServer, table api.TableType, name string, prefix netip.Prefix) (ribPath, bool) {
	t.Helper()
	family := &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	if prefix.Addr().Is6() {
		family.Afi = api.Family_AFI_IP6
	}
	var out ribPath
	found := false
	err := s.ListPath(context.Background(), &api.ListPathRequest{
		TableType: table, Name: name, Family: family,
		Prefixes: []*api.TableLookupPrefix{{Prefix: prefix.String(), Type: api.TableLookupPrefix_EXACT}},
	}, func(d *api.Destination) {
		for _, p := range d.Paths {
			if table == api.TableType_GLOBAL && !p.Best {
				continue
			}
			attrs, err := apiutil.UnmarshalPathAttributes(p.Pattrs)
			if err != nil {
				t.Errorf("unmarshal attributes: %v", err)
				return
			}
			found = true
			out.stale = p.Stale
			for _, a := range attrs {
				switch a := a.(type) {
				case *bgp.PathAttributeNextHop:
					out.nextHop = a.Value.String()
				case *bgp.PathAttributeMpReachNLRI:
					out.nextHop = a.Nexthop.String()
				case *bgp.PathAttributeCommunities:
					out.communities = a.Value
				case *bgp.PathAttributeLargeCommunities:
					for _, l := range a.Values {
						out.largeCommunities = append(out.largeCommunities, l.String())
					}
				case *bgp.PathAttributeLocalPref:
					out.localPref = ptr.To(a.Value)
				case *bgp.PathAttributeAsPath:
					out.asPath = a.String()
				case *bgp.PathAttributeExtendedCommunities:
					for _, ec := range a.Value {
						if lb, ok := ec.(*bgp.LinkBandwidthExtended); ok {
							out.linkBandwidth = ptr.To(lb.Bandwidth)
						}
					}
				}
			}
		}
	})
	if err != nil {
		t.Fatalf("list path %s: %v", prefix, err)
	}
	return out, found
}

func newSpeaker(t *testing.T) *GoBGPSpeaker {
	t.Helper()
	logger, _ := ktesting.NewTestContext(t)
	sp := NewSpeaker(logger)
	if err := sp.Start(context.Background(), Global{ASN: nodeASN, RouterID: netip.MustParseAddr("198.18.0.11"), ListenPort: -1}); err != nil {
		t.Fatalf("start speaker: %v", err)
	}
	t.Cleanup(func() {
		if err := sp.Stop(context.Background(), false); err != nil {
			t.Errorf("stop speaker: %v", err)
		}
	})
	if err := sp.SetAllowedPrefixes(context.Background(), []netip.Prefix{vipPool, netip.MustParsePrefix("2001:db8:ffff::/112")}); err != nil {
		t.Fatal(err)
	}
	return sp
}

func peerConfig(name string, p *testPeer, peerASN uint32) PeerConfig {
	return PeerConfig{Name: name, Address: p.addr, Port: p.port, PeerASN: peerASN, ConnectRetry: time.Second}
}

func waitEstablished(t *testing.T, sp *GoBGPSpeaker, addrs ...netip.Addr) {
	t.Helper()
	poll.Eventually(t, waitFor, every, fmt.Sprintf("sessions to %v Established", addrs), func() string {
		st, err := sp.Peers(context.Background())
		if err != nil {
			return err.Error()
		}
		for _, a := range addrs {
			i := slices.IndexFunc(st, func(s PeerStatus) bool { return s.Address == a })
			if i < 0 {
				return fmt.Sprintf("peer %s not listed", a)
			}
			if st[i].State != StateEstablished {
				return fmt.Sprintf("peer %s is %s (last error %q)", a, st[i].State, st[i].LastError)
			}
		}
		return ""
	})
}

// TestAnnounceToEBGPAndIBGPPeers covers announce, attribute change, withdraw, the
// allowed-prefix safety check and SetPeers removing one peer.
func TestAnnounceToEBGPAndIBGPPeers(t *testing.T) {
	ctx := context.Background()
	ebgp := newTestPeer(t, routerASN, "198.18.0.1", "127.0.0.1", "127.0.0.1", nodeASN)
	ibgp := newTestPeer(t, nodeASN, "198.18.0.2", "127.0.0.2", "127.0.0.1", nodeASN)
	sp := newSpeaker(t)
	if err := sp.SetPeers(ctx, []PeerConfig{peerConfig("router-ebgp", ebgp, routerASN), peerConfig("router-ibgp", ibgp, nodeASN)}); err != nil {
		t.Fatalf("set peers: %v", err)
	}
	waitEstablished(t, sp, ebgp.addr, ibgp.addr)
	if n := sp.EstablishedPeers(); n != 2 {
		// the watcher may lag ListPeer by a moment
		poll.Eventually(t, waitFor, every, "EstablishedPeers == 2", func() string {
			if n := sp.EstablishedPeers(); n != 2 {
				return fmt.Sprintf("EstablishedPeers = %d", n)
			}
			return ""
		})
	}
	select {
	case <-sp.Changes():
	default:
		t.Error("no change notification after sessions came up")
	}

	vip := netip.MustParsePrefix("203.0.113.10/32")
	comm, _ := ParseCommunity("65000:100")
	path := Path{
		Prefix:           vip,
		Communities:      []uint32{comm},
		LargeCommunities: []LargeCommunity{{64513, 1, 2}},
		LocalPref:        ptr.To[uint32](200),
		LinkBandwidth:    ptr.To[float32](3 * 125000), // 3 endpoints x 1 Mbit/s
	}
	if err := sp.Announce(ctx, path); err != nil {
		t.Fatalf("announce: %v", err)
	}
	poll.Eventually(t, waitFor, every, "eBGP peer has the VIP with our attributes", func() string {
		got, ok := ebgp.lookup(t, vip)
		switch {
		case !ok:
			return "not in RIB"
		case got.nextHop != "127.0.0.1":
			return "next hop " + got.nextHop
		case !slices.Equal(got.communities, []uint32{comm}):
			return fmt.Sprintf("communities %v", got.communities)
		case !slices.Equal(got.largeCommunities, []string{"64513:1:2"}):
			return fmt.Sprintf("large communities %v", got.largeCommunities)
		case got.linkBandwidth == nil || *got.linkBandwidth != 375000:
			return fmt.Sprintf("link bandwidth %v", got.linkBandwidth)
		case got.localPref != nil && *got.localPref == 200:
			return "local-pref 200 leaked to an eBGP peer"
		case !strings.Contains(got.asPath, "64513"):
			return "AS path " + got.asPath
		}
		return ""
	})
	poll.Eventually(t, waitFor, every, "iBGP peer has the VIP with local-pref", func() string {
		got, ok := ibgp.lookup(t, vip)
		switch {
		case !ok:
			return "not in RIB"
		case got.localPref == nil || *got.localPref != 200:
			return fmt.Sprintf("local-pref %v", got.localPref)
		case got.nextHop != "127.0.0.1":
			return "next hop " + got.nextHop
		}
		return ""
	})

	// Attribute change: new community, new bandwidth.
	comm2, _ := ParseCommunity("65000:200")
	path.Communities = []uint32{comm2}
	path.LinkBandwidth = ptr.To[float32](125000)
	if err := sp.Announce(ctx, path); err != nil {
		t.Fatalf("re-announce: %v", err)
	}
	poll.Eventually(t, waitFor, every, "eBGP peer sees the changed attributes", func() string {
		got, ok := ebgp.lookup(t, vip)
		if !ok {
			return "not in RIB"
		}
		if !slices.Equal(got.communities, []uint32{comm2}) || got.linkBandwidth == nil || *got.linkBandwidth != 125000 {
			return fmt.Sprintf("communities %v bandwidth %v", got.communities, got.linkBandwidth)
		}
		return ""
	})
	if a := sp.Announced(); len(a) != 1 || a[0].Prefix != vip {
		t.Errorf("Announced() = %v", a)
	}
	poll.Eventually(t, waitFor, every, "prefixes sent reported", func() string {
		st, _ := sp.Peers(ctx)
		for _, s := range st {
			if s.PrefixesSent != 1 || s.EstablishedSince.IsZero() || s.LastError != "" {
				return fmt.Sprintf("%+v", s)
			}
		}
		return ""
	})

	// Safety: outside the allowed set, refused, and never reaches the peer.
	outside := netip.MustParsePrefix("198.51.100.10/32")
	if err := sp.Announce(ctx, Path{Prefix: outside}); !errors.Is(err, ErrPrefixNotAllowed) {
		t.Fatalf("announce outside pool: err = %v, want ErrPrefixNotAllowed", err)
	}
	if err := sp.Announce(ctx, Path{Prefix: netip.MustParsePrefix("203.0.112.0/23")}); !errors.Is(err, ErrPrefixNotAllowed) {
		t.Fatalf("announce a supernet of the pool: err = %v, want ErrPrefixNotAllowed", err)
	}

	// A second VIP, then shrink the allowed set: it is withdrawn, the first stays.
	vip2 := netip.MustParsePrefix("203.0.113.200/32")
	if err := sp.Announce(ctx, Path{Prefix: vip2}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, waitFor, every, "second VIP at the peer", func() string {
		if _, ok := ebgp.lookup(t, vip2); !ok {
			return "not in RIB"
		}
		return ""
	})
	if err := sp.SetAllowedPrefixes(ctx, []netip.Prefix{netip.MustParsePrefix("203.0.113.0/25")}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, waitFor, every, "VIP outside the shrunk pool withdrawn", func() string {
		if _, ok := ebgp.lookup(t, vip2); ok {
			return "203.0.113.200/32 still in RIB"
		}
		if _, ok := ebgp.lookup(t, vip); !ok {
			return "203.0.113.10/32 gone too"
		}
		return ""
	})
	if _, ok := ebgp.lookup(t, outside); ok {
		t.Errorf("refused prefix %s reached the peer", outside)
	}

	// Remove the iBGP peer: the eBGP peer keeps the route, the iBGP one loses the session.
	if err := sp.SetPeers(ctx, []PeerConfig{peerConfig("router-ebgp", ebgp, routerASN)}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, waitFor, every, "iBGP peer dropped the route", func() string {
		if _, ok := ibgp.lookup(t, vip); ok {
			return "still in iBGP peer's RIB"
		}
		return ""
	})
	if _, ok := ebgp.lookup(t, vip); !ok {
		t.Fatal("eBGP peer lost the route when another peer was removed")
	}
	st, err := sp.Peers(ctx)
	if err != nil || len(st) != 1 || st[0].Address != ebgp.addr || st[0].State != StateEstablished {
		t.Fatalf("peers after removal = %+v, %v", st, err)
	}

	// Withdraw.
	if err := sp.Withdraw(ctx, vip); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, waitFor, every, "VIP withdrawn", func() string {
		if _, ok := ebgp.lookup(t, vip); ok {
			return "still in RIB"
		}
		return ""
	})
	if err := sp.Withdraw(ctx, vip); err != nil {
		t.Errorf("second withdraw: %v", err)
	}
	if a := sp.Announced(); len(a) != 0 {
		t.Errorf("Announced() after withdraw = %v", a)
	}
}

// TestNoImport checks routes the peer announces never enter our RIB (reject-all import).
func TestNoImport(t *testing.T) {
	ctx := context.Background()
	peer := newTestPeer(t, routerASN, "198.18.0.1", "127.0.0.1", "127.0.0.1", nodeASN)
	sp := newSpeaker(t)
	if err := sp.SetPeers(ctx, []PeerConfig{peerConfig("router", peer, routerASN)}); err != nil {
		t.Fatal(err)
	}
	waitEstablished(t, sp, peer.addr)
	injected := netip.MustParsePrefix("198.51.100.77/32")
	nlri, _ := apiutil.MarshalNLRI(bgp.NewIPAddrPrefix(32, injected.Addr().String()))
	attrs, _ := apiutil.MarshalPathAttributes([]bgp.PathAttributeInterface{
		bgp.NewPathAttributeOrigin(0), bgp.NewPathAttributeNextHop("127.0.0.1"),
	})
	if _, err := peer.s.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: &api.Path{
		Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}, Nlri: nlri, Pattrs: attrs,
	}}); err != nil {
		t.Fatal(err)
	}
	// The path reaches us (adj-rib-in) ...
	poll.Eventually(t, waitFor, every, "injected route received", func() string {
		if _, ok := listRIB(t, sp.s, api.TableType_ADJ_IN, "127.0.0.1", injected); !ok {
			return "not in adj-rib-in"
		}
		return ""
	})
	// ... but the import policy keeps it out of our RIB.
	if _, ok := listRIB(t, sp.s, api.TableType_GLOBAL, "", injected); ok {
		t.Fatal("route announced by the peer was imported into our RIB")
	}
	// The peer's status counts what it sent (BGPNodeState's prefixesReceived).
	st, err := sp.Peers(ctx)
	if err != nil || len(st) != 1 || st[0].PrefixesReceived != 1 {
		t.Fatalf("peer status %+v (err %v): want one peer with PrefixesReceived 1", st, err)
	}
}

// TestIPv6 announces a /128 over an IPv6 session; the next hop is our v6 address.
func TestIPv6(t *testing.T) {
	ctx := context.Background()
	peer := newTestPeer(t, routerASN, "198.18.0.1", "::1", "::1", nodeASN)
	sp := newSpeaker(t)
	if err := sp.SetPeers(ctx, []PeerConfig{peerConfig("router-v6", peer, routerASN)}); err != nil {
		t.Fatal(err)
	}
	waitEstablished(t, sp, peer.addr)
	vip := netip.MustParsePrefix("2001:db8:ffff::10/128")
	if err := sp.Announce(ctx, Path{Prefix: vip, LinkBandwidth: ptr.To[float32](250000)}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, waitFor, every, "v6 VIP at the peer", func() string {
		got, ok := peer.lookup(t, vip)
		if !ok {
			return "not in RIB"
		}
		if got.nextHop != "::1" || got.linkBandwidth == nil || *got.linkBandwidth != 250000 {
			return fmt.Sprintf("%+v", got)
		}
		return ""
	})
	if err := sp.Announce(ctx, Path{Prefix: netip.MustParsePrefix("2001:db8:fffe::1/128")}); !errors.Is(err, ErrPrefixNotAllowed) {
		t.Fatalf("v6 outside pool: %v", err)
	}
	if err := sp.Withdraw(ctx, vip); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, waitFor, every, "v6 VIP withdrawn", func() string {
		if _, ok := peer.lookup(t, vip); ok {
			return "still in RIB"
		}
		return ""
	})
}

// TestPeerErrors checks the state and the error in words for a wrong ASN and a closed port.
func TestPeerErrors(t *testing.T) {
	ctx := context.Background()
	peer := newTestPeer(t, routerASN, "198.18.0.1", "127.0.0.1", "127.0.0.1", nodeASN)
	closedPort := freePort(t, "127.0.0.3")
	sp := newSpeaker(t)
	wrongASN := peerConfig("wrong-asn", peer, 65000)
	refused := PeerConfig{Name: "refused", Address: netip.MustParseAddr("127.0.0.3"), Port: closedPort, PeerASN: routerASN, ConnectRetry: time.Second}
	if err := sp.SetPeers(ctx, []PeerConfig{wrongASN, refused}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, waitFor, every, "errors in words", func() string {
		st, err := sp.Peers(ctx)
		if err != nil {
			return err.Error()
		}
		if len(st) != 2 {
			return fmt.Sprintf("%d peers", len(st))
		}
		for _, s := range st {
			var want string
			switch s.Name {
			case "wrong-asn":
				want = "OPEN: bad peer AS"
			case "refused":
				want = "connect: connection refused"
			}
			if s.State == StateEstablished || !strings.Contains(s.LastError, want) {
				return fmt.Sprintf("peer %s: state %s, last error %q, want it to contain %q", s.Name, s.State, s.LastError, want)
			}
		}
		return ""
	})
	if n := sp.EstablishedPeers(); n != 0 {
		t.Errorf("EstablishedPeers = %d, want 0", n)
	}
	// Fixing the ASN brings the session up and clears the error.
	if err := sp.SetPeers(ctx, []PeerConfig{peerConfig("wrong-asn", peer, routerASN), refused}); err != nil {
		t.Fatal(err)
	}
	waitEstablished(t, sp, peer.addr)
}

func TestValidation(t *testing.T) {
	ctx := context.Background()
	sp := newSpeaker(t)
	a := netip.MustParseAddr("127.0.0.1")
	for _, tc := range []struct {
		pc   PeerConfig
		want string
	}{
		{PeerConfig{Name: "x", PeerASN: 1}, "address is not set"},
		{PeerConfig{Name: "x", Address: a}, "peerASN"},
		{PeerConfig{Name: "x", Address: a, PeerASN: 1, HoldTime: time.Second}, "hold time"},
		{PeerConfig{Name: "x", Address: a, PeerASN: 1, HoldTime: 9 * time.Second, Keepalive: 9 * time.Second}, "keepalive"},
		{PeerConfig{Name: "x", Address: a, PeerASN: 1, SourceAddress: netip.MustParseAddr("::1")}, "family"},
	} {
		if err := sp.SetPeers(ctx, []PeerConfig{tc.pc}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SetPeers(%+v) = %v, want error containing %q", tc.pc, err, tc.want)
		}
	}
	if err := sp.SetPeers(ctx, []PeerConfig{{Name: "a", Address: a, PeerASN: 1}, {Name: "b", Address: a, PeerASN: 2}}); err == nil {
		t.Error("two peers with one address accepted")
	}
	if st, _ := sp.Peers(ctx); len(st) != 0 {
		t.Errorf("invalid SetPeers changed the peers: %+v", st)
	}
	if c, err := ParseCommunity("65000:100"); err != nil || c != 65000<<16|100 {
		t.Errorf("ParseCommunity = %d, %v", c, err)
	}
	for _, bad := range []string{"65536:1", "1", "a:b", "1:70000"} {
		if _, err := ParseCommunity(bad); err == nil {
			t.Errorf("ParseCommunity(%q) accepted", bad)
		}
	}
	if l, err := ParseLargeCommunity("4200000000:1:2"); err != nil || l != (LargeCommunity{4200000000, 1, 2}) {
		t.Errorf("ParseLargeCommunity = %v, %v", l, err)
	}
	if _, err := ParseLargeCommunity("1:2"); err == nil {
		t.Error("ParseLargeCommunity(1:2) accepted")
	}
	// Not started.
	logger, _ := ktesting.NewTestContext(t)
	if err := NewSpeaker(logger).Announce(ctx, Path{Prefix: netip.MustParsePrefix("203.0.113.1/32")}); !errors.Is(err, ErrNotStarted) {
		t.Errorf("announce before start: %v", err)
	}
}
