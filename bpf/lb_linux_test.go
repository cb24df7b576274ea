//go:build linux

package bpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
)

// tc/tcx return codes as seen by BPF_PROG_TEST_RUN.
const (
	actNext     = ^uint32(0) // TC_ACT_UNSPEC / TCX_NEXT: untouched, continue
	actShot     = 2
	actRedirect = 7
)

type fixture struct {
	objs lbObjects
	maps *Maps
	ns   *testNetns   // lazily: the interfaces podOn runs lb_pod on
	ifs  map[int]bool // ifindexes created in ns
}

// newFixture loads the programs with DeliveryRedirect: the packet tests check the
// per-flow logic (NAT, conntrack, reverse NAT, anti-spoofing, drops) that both
// deliveries share, through lb_pod's reply path; delivery_linux_test.go checks the
// default delivery (lb_uplink continuing into the stack, lb_egress's reply path).
func newFixture(tb testing.TB) *fixture {
	return newFixtureDelivery(tb, DeliveryRedirect)
}

func newFixtureDelivery(tb testing.TB, d Delivery) *fixture {
	tb.Helper()
	SetDelivery(d)
	defer SetDelivery(DeliveryStack)
	pinDir := newPinDir(tb)
	f := &fixture{}
	if err := loadObjects(pinDir, &f.objs); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			tb.Fatalf("load: %+v", ve)
		}
		tb.Fatalf("load: %v", err)
	}
	tb.Cleanup(func() { f.objs.Close() })
	f.maps = &Maps{m: f.objs.lbMaps}
	return f
}

func runRaw(prog *ebpf.Program, pkt []byte) (uint32, []byte, error) {
	opts := ebpf.RunOptions{Data: pkt, DataOut: make([]byte, len(pkt)+256)}
	ret, err := prog.Run(&opts)
	return ret, opts.DataOut, err
}

// harnessRejects reports whether BPF_PROG_TEST_RUN refuses the frame (EINVAL)
// before the program runs: it wants an Ethernet header and, for the IPv4/IPv6
// ethertypes, a whole fixed IP header. (Real traffic can be shorter; the
// programs read headers with bpf_skb_load_bytes, which fails safely.)
func harnessRejects(pkt []byte) bool {
	if len(pkt) < 14 {
		return true
	}
	switch binary.BigEndian.Uint16(pkt[12:]) {
	case 0x0800:
		return len(pkt) < 14+20
	case 0x86dd:
		return len(pkt) < 14+40
	}
	return false
}

func runProg(tb testing.TB, prog *ebpf.Program, pkt []byte) (uint32, []byte) {
	tb.Helper()
	opts := ebpf.RunOptions{Data: pkt, DataOut: make([]byte, len(pkt)+256)}
	ret, err := prog.Run(&opts)
	if err != nil {
		tb.Fatalf("run %v: %v", prog, err)
	}
	return ret, opts.DataOut
}

func (f *fixture) uplink(tb testing.TB, pkt []byte) (uint32, []byte) {
	tb.Helper()
	return runProg(tb, f.objs.LbUplink, pkt)
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

func mustDecode(tb testing.TB, p []byte) decoded {
	tb.Helper()
	d, err := decodePacket(p)
	if err != nil {
		tb.Fatalf("decode: %v\n% x", err, p)
	}
	return d
}

func (f *fixture) drops(tb testing.TB) map[DropReason]uint64 {
	tb.Helper()
	d, err := f.maps.Drops()
	must(tb, err)
	return d
}

type natCase struct {
	name         string
	vip, backend netip.AddrPort
	client       netip.AddrPort
	proto        uint8
	udpNoCsum    bool
	wantZeroCsum bool
}

func natCases() []natCase {
	return []natCase{
		{name: "tcp4", vip: ap("203.0.113.10:80"), backend: ap("198.19.1.5:8080"), client: ap("198.51.100.10:40000"), proto: ipProtoTCP},
		{name: "udp4", vip: ap("203.0.113.10:53"), backend: ap("198.19.1.6:5353"), client: ap("198.51.100.10:40001"), proto: ipProtoUDP},
		{name: "udp4-nocsum", vip: ap("203.0.113.10:53"), backend: ap("198.19.1.6:5353"), client: ap("198.51.100.10:40002"), proto: ipProtoUDP, udpNoCsum: true, wantZeroCsum: true},
		{name: "tcp4-sameport", vip: ap("203.0.113.11:443"), backend: ap("198.19.1.7:443"), client: ap("198.51.100.10:40003"), proto: ipProtoTCP},
		{name: "tcp6", vip: ap("[2001:db8:ffff::10]:80"), backend: ap("[2001:db8:1:1::5]:8080"), client: ap("[2001:db8:c::10]:40000"), proto: ipProtoTCP},
		{name: "udp6", vip: ap("[2001:db8:ffff::10]:53"), backend: ap("[2001:db8:1:1::6]:5353"), client: ap("[2001:db8:c::10]:40001"), proto: ipProtoUDP},
	}
}

// TestNAT: DNAT on the uplink and reverse NAT on the pod veth, TCP/UDP over
// IPv4/IPv6, checksums verified by the independent decoder.
func TestNAT(t *testing.T) {
	for i, c := range natCases() {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			svcID, beID, ifidx := uint32(10+i), uint32(100+i), 40+i
			key := ServiceKey{VIP: c.vip.Addr(), Port: c.vip.Port(), Proto: Proto(c.proto)}
			must(t, f.maps.PutBackend(beID, Backend{Addr: c.backend, Ifindex: ifidx}))
			must(t, f.maps.PutService(key, Service{ID: svcID, Local: true}, []uint32{beID}))

			payload := []byte("hello, backend! odd length.")
			req := buildPacket(pktSpec{src: c.client, dst: c.vip, proto: c.proto, payload: payload, udpNoCsum: c.udpNoCsum})
			ret, out := f.uplink(t, req)
			if ret != actRedirect {
				t.Fatalf("uplink returned %d, want redirect (%d)", int32(ret), actRedirect)
			}
			d := mustDecode(t, out)
			if d.dst != c.backend || d.src != c.client {
				t.Fatalf("after DNAT %v -> %v, want %v -> %v", d.src, d.dst, c.client, c.backend)
			}
			if !bytes.Equal(d.payload, payload) || d.srcMAC.String() != macClient.String() || d.dstMAC.String() != macNode.String() {
				t.Fatalf("payload or MACs changed: %q %v %v", d.payload, d.srcMAC, d.dstMAC)
			}
			if c.wantZeroCsum && d.l4Csum != 0 {
				t.Fatalf("UDP checksum 0 became %#04x", d.l4Csum)
			}
			if len(out) != len(req) {
				t.Fatalf("length changed: %d -> %d", len(req), len(out))
			}

			flows, err := f.maps.Flows(0)
			must(t, err)
			if len(flows) != 1 || flows[0].Client != c.client || flows[0].Frontend != c.vip || flows[0].BackendID != beID || flows[0].ServiceID != svcID {
				t.Fatalf("conntrack = %+v", flows)
			}
			st, err := f.maps.ServiceStats(svcID)
			must(t, err)
			bst, err := f.maps.BackendStats(beID)
			must(t, err)
			if st.Packets != 1 || st.Bytes != uint64(len(req)) || bst != st {
				t.Fatalf("counters service %+v backend %+v, want 1 packet of %d bytes", st, bst, len(req))
			}

			// The reply leaves the pod: source back to VIP:port, MACs of the
			// request swapped, redirected to the uplink.
			reply := buildPacket(pktSpec{srcMAC: macPod, dstMAC: macVeth, src: c.backend, dst: c.client, proto: c.proto, payload: []byte("reply"), udpNoCsum: c.udpNoCsum})
			ret, out = f.pod(t, reply)
			if ret != actRedirect {
				t.Fatalf("pod returned %d, want redirect", int32(ret))
			}
			d = mustDecode(t, out)
			if d.src != c.vip || d.dst != c.client {
				t.Fatalf("after reverse NAT %v -> %v, want %v -> %v", d.src, d.dst, c.vip, c.client)
			}
			if d.dstMAC.String() != macClient.String() || d.srcMAC.String() != macNode.String() {
				t.Fatalf("reply MACs %v -> %v, want %v -> %v", d.srcMAC, d.dstMAC, macNode, macClient)
			}
			if c.wantZeroCsum && d.l4Csum != 0 {
				t.Fatalf("UDP checksum 0 became %#04x", d.l4Csum)
			}

			// A packet from the pod that is not a reply of a tracked flow is untouched.
			other := buildPacket(pktSpec{srcMAC: macPod, dstMAC: macVeth, src: c.backend, dst: netip.AddrPortFrom(c.client.Addr(), 1), proto: c.proto})
			ret, out = f.pod(t, other)
			if ret != actNext || !bytes.Equal(out, other) {
				t.Fatalf("untracked pod packet: ret %d, changed %v", int32(ret), !bytes.Equal(out, other))
			}
		})
	}
}

// flowBackend sends one packet of a flow from client port sport and returns
// the backend address it was sent to.
func (f *fixture) flowBackend(tb testing.TB, vip netip.AddrPort, sport uint16) netip.Addr {
	tb.Helper()
	req := buildPacket(pktSpec{src: netip.AddrPortFrom(netip.MustParseAddr("198.51.100.10"), sport), dst: vip, proto: ipProtoTCP})
	ret, out := f.uplink(tb, req)
	if ret != actRedirect {
		tb.Fatalf("flow from port %d: ret %d, want redirect", sport, int32(ret))
	}
	return mustDecode(tb, out).dst.Addr()
}

func TestConntrackKeepsBackend(t *testing.T) {
	f := newFixture(t)
	vip := ap("203.0.113.20:80")
	key := ServiceKey{VIP: vip.Addr(), Port: 80, Proto: ProtoTCP}
	be := map[uint32]netip.Addr{}
	for id := uint32(1); id <= 4; id++ {
		be[id] = netip.MustParseAddr(fmt.Sprintf("198.19.1.%d", id))
		must(t, f.maps.PutBackend(id, Backend{Addr: netip.AddrPortFrom(be[id], 8080), Ifindex: 10 + int(id)}))
	}
	must(t, f.maps.PutService(key, Service{ID: 1}, []uint32{1, 2, 3}))

	const flows = 300
	first := map[uint16]netip.Addr{}
	perBackend := map[netip.Addr]int{}
	for p := uint16(0); p < flows; p++ {
		a := f.flowBackend(t, vip, 20000+p)
		first[20000+p] = a
		perBackend[a]++
	}
	for id := uint32(1); id <= 3; id++ {
		if n := perBackend[be[id]]; n < flows/3/2 {
			t.Errorf("backend %d got %d of %d flows: not spread", id, n, flows)
		}
	}
	if perBackend[be[4]] != 0 {
		t.Fatalf("backend 4 is not in the set but got %d flows", perBackend[be[4]])
	}

	// The set changes to {4}: tracked flows stay, new flows go to 4.
	must(t, f.maps.PutService(key, Service{ID: 1}, []uint32{4}))
	for p := uint16(0); p < flows; p++ {
		if a := f.flowBackend(t, vip, 20000+p); a != first[20000+p] {
			t.Fatalf("flow %d moved from %v to %v after a backend-set change", 20000+p, first[20000+p], a)
		}
	}
	for p := uint16(0); p < 20; p++ {
		if a := f.flowBackend(t, vip, 30000+p); a != be[4] {
			t.Fatalf("new flow %d went to %v, want %v", 30000+p, a, be[4])
		}
	}

	// Backend 2 is deleted: its flows move (to 4, the only new-flow backend), the others stay.
	must(t, f.maps.DeleteBackend(2))
	for p := uint16(0); p < flows; p++ {
		want := first[20000+p]
		if want == be[2] {
			want = be[4]
		}
		if a := f.flowBackend(t, vip, 20000+p); a != want {
			t.Fatalf("flow %d went to %v, want %v", 20000+p, a, want)
		}
	}

	// Backend 1 becomes terminating: its established flows stay, but a SYN
	// reusing one of their tuples is a new connection and goes to 4.
	must(t, f.maps.PutBackend(1, Backend{Addr: netip.AddrPortFrom(be[1], 8080), Ifindex: 11, Terminating: true}))
	var reused uint16
	for p := uint16(0); p < flows; p++ {
		if first[20000+p] == be[1] {
			reused = 20000 + p
			break
		}
	}
	if a := f.flowBackend(t, vip, reused); a != be[1] {
		t.Fatalf("established flow on a terminating backend moved to %v", a)
	}
	syn := buildPacket(pktSpec{src: netip.AddrPortFrom(netip.MustParseAddr("198.51.100.10"), reused), dst: vip, proto: ipProtoTCP, tcpFlags: 0x02})
	if ret, out := f.uplink(t, syn); ret != actRedirect || mustDecode(t, out).dst.Addr() != be[4] {
		t.Fatalf("SYN reusing a terminating backend's tuple: ret %d, want redirect to %v", int32(ret), be[4])
	}
	if a := f.flowBackend(t, vip, reused); a != be[4] {
		t.Fatalf("the new connection's next packet went to %v, want %v", a, be[4])
	}
	// A SYN to a non-terminating backend's flow keeps it (a retransmitted SYN).
	for p := uint16(0); p < flows; p++ {
		if first[20000+p] == be[3] {
			syn := buildPacket(pktSpec{src: netip.AddrPortFrom(netip.MustParseAddr("198.51.100.10"), 20000+p), dst: vip, proto: ipProtoTCP, tcpFlags: 0x02})
			if ret, out := f.uplink(t, syn); ret != actRedirect || mustDecode(t, out).dst.Addr() != be[3] {
				t.Fatalf("retransmitted SYN moved off a ready backend")
			}
			break
		}
	}

	// Listing reflects the maps.
	svcs, err := f.maps.Services()
	must(t, err)
	if len(svcs) != 1 || svcs[0].Key != key || fmt.Sprint(svcs[0].Backends) != "[4]" || svcs[0].Stats.Packets == 0 {
		t.Fatalf("Services() = %+v", svcs)
	}
	bes, err := f.maps.Backends()
	must(t, err)
	if len(bes) != 3 || bes[0].ID != 1 || bes[0].Backend.Addr != netip.AddrPortFrom(be[1], 8080) || bes[0].Backend.Ifindex != 11 {
		t.Fatalf("Backends() = %+v", bes)
	}
}

func TestSourceRanges(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		vip           netip.AddrPort
		ranges        []netip.Prefix
		allow, reject netip.AddrPort
	}{
		{ap("203.0.113.30:80"), []netip.Prefix{netip.MustParsePrefix("198.51.100.0/25"), netip.MustParsePrefix("198.18.0.0/24")}, ap("198.51.100.10:1234"), ap("198.51.100.200:1234")},
		{ap("[2001:db8:ffff::30]:80"), []netip.Prefix{netip.MustParsePrefix("2001:db8:c::/64")}, ap("[2001:db8:c::10]:1234"), ap("[2001:db8:d::10]:1234")},
	} {
		id := uint32(len(c.ranges)*10 + 1)
		if c.vip.Addr().Is6() {
			id++
		}
		beAddr := ap("198.19.1.9:80")
		if c.vip.Addr().Is6() {
			beAddr = ap("[2001:db8:1:1::9]:80")
		}
		must(t, f.maps.PutBackend(id, Backend{Addr: beAddr, Ifindex: 9}))
		must(t, f.maps.SetSourceRanges(id, c.ranges))
		key := ServiceKey{VIP: c.vip.Addr(), Port: 80, Proto: ProtoTCP}
		must(t, f.maps.PutService(key, Service{ID: id, SourceRanges: true}, []uint32{id}))

		got, err := f.maps.SourceRanges(id)
		must(t, err)
		if len(got) != len(c.ranges) {
			t.Fatalf("SourceRanges(%d) = %v, want %v", id, got, c.ranges)
		}
		before := f.drops(t)[DropSourceRange]
		if ret, _ := f.uplink(t, buildPacket(pktSpec{src: c.allow, dst: c.vip, proto: ipProtoTCP})); ret != actRedirect {
			t.Fatalf("%v -> %v: ret %d, want redirect", c.allow, c.vip, int32(ret))
		}
		if ret, _ := f.uplink(t, buildPacket(pktSpec{src: c.reject, dst: c.vip, proto: ipProtoTCP})); ret != actShot {
			t.Fatalf("%v -> %v: ret %d, want drop", c.reject, c.vip, int32(ret))
		}
		if n := f.drops(t)[DropSourceRange]; n != before+1 {
			t.Fatalf("sourceRange drops %d, want %d", n, before+1)
		}
		// Without the flag the ranges are not enforced.
		must(t, f.maps.PutService(key, Service{ID: id}, []uint32{id}))
		if ret, _ := f.uplink(t, buildPacket(pktSpec{src: c.reject, dst: c.vip, proto: ipProtoTCP})); ret != actRedirect {
			t.Fatalf("ranges enforced without the flag: ret %d", int32(ret))
		}
		// Deleting the service removes its ranges.
		must(t, f.maps.DeleteService(key))
		if got, err := f.maps.SourceRanges(id); err != nil || len(got) != 0 {
			t.Fatalf("ranges after DeleteService: %v %v", got, err)
		}
	}
}

func TestEchoReply(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		client, vip netip.Addr
		proto       uint8
		req, rep    uint8
	}{
		{netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("203.0.113.40"), ipProtoICMP, 8, 0},
		{netip.MustParseAddr("2001:db8:c::10"), netip.MustParseAddr("2001:db8:ffff::40"), ipProtoICMPv6, 128, 129},
	} {
		payload := []byte("ping payload 0123456789")
		req := buildPacket(pktSpec{src: netip.AddrPortFrom(c.client, 0), dst: netip.AddrPortFrom(c.vip, 0), proto: c.proto, icmpType: c.req, payload: payload})

		// Not (yet) a VIP: untouched.
		if ret, out := f.uplink(t, req); ret != actNext || !bytes.Equal(out, req) {
			t.Fatalf("echo to a non-VIP: ret %d", int32(ret))
		}
		must(t, f.maps.PutVIP(c.vip))
		ret, out := f.uplink(t, req)
		if ret != actRedirect {
			t.Fatalf("echo to VIP %v: ret %d, want redirect", c.vip, int32(ret))
		}
		d := mustDecode(t, out)
		if d.src.Addr() != c.vip || d.dst.Addr() != c.client || d.icmpType != c.rep || d.icmpID != 0x4242 || d.icmpSq != 7 || !bytes.Equal(d.payload, payload) {
			t.Fatalf("echo reply %+v", d)
		}
		if d.dstMAC.String() != macClient.String() || d.srcMAC.String() != macNode.String() {
			t.Fatalf("echo reply MACs %v -> %v", d.srcMAC, d.dstMAC)
		}
		// An echo reply (or other ICMP) to the VIP is not answered: it is dropped
		// and counted (passed on, the kernel would route it back to the router).
		other := buildPacket(pktSpec{src: netip.AddrPortFrom(c.client, 0), dst: netip.AddrPortFrom(c.vip, 0), proto: c.proto, icmpType: c.rep})
		before := f.drops(t)[DropNoService]
		if ret, _ := f.uplink(t, other); ret != actShot || f.drops(t)[DropNoService] != before+1 {
			t.Fatalf("echo reply to VIP: ret %d, drops %d -> %d; want dropped and counted", int32(ret), before, f.drops(t)[DropNoService])
		}
		must(t, f.maps.DeleteVIP(c.vip))
		if ret, _ := f.uplink(t, req); ret != actNext {
			t.Fatalf("echo after DeleteVIP: ret %d", int32(ret))
		}
	}
}

func TestNoLocalBackend(t *testing.T) {
	f := newFixture(t)
	local := ServiceKey{VIP: netip.MustParseAddr("203.0.113.50"), Port: 80, Proto: ProtoTCP}
	cluster := ServiceKey{VIP: netip.MustParseAddr("203.0.113.51"), Port: 80, Proto: ProtoTCP}
	must(t, f.maps.PutService(local, Service{ID: 1, Local: true}, nil))
	must(t, f.maps.PutService(cluster, Service{ID: 2}, nil))
	client := ap("198.51.100.10:5555")

	req := buildPacket(pktSpec{src: client, dst: netip.AddrPortFrom(local.VIP, 80), proto: ipProtoTCP})
	if ret, _ := f.uplink(t, req); ret != actShot {
		t.Fatalf("Local without backend: ret %d, want drop", int32(ret))
	}
	if n := f.drops(t)[DropNoLocalBackend]; n != 1 {
		t.Fatalf("noLocalBackend drops = %d, want 1", n)
	}
	req = buildPacket(pktSpec{src: client, dst: netip.AddrPortFrom(cluster.VIP, 80), proto: ipProtoTCP})
	if ret, out := f.uplink(t, req); ret != actNext || !bytes.Equal(out, req) {
		t.Fatalf("Cluster without backend: ret %d, want untouched pass", int32(ret))
	}
	if d := f.drops(t); len(d) != 1 {
		t.Fatalf("drops = %v, want only the Local one", d)
	}

	// PutService refuses missing and wrong-family backends ...
	must(t, f.maps.PutBackend(7, Backend{Addr: ap("[2001:db8:1:1::7]:80"), Ifindex: 7}))
	if err := f.maps.PutService(cluster, Service{ID: 2}, []uint32{8}); err == nil {
		t.Fatal("PutService with a missing backend succeeded")
	}
	if err := f.maps.PutService(cluster, Service{ID: 2}, []uint32{7}); err == nil {
		t.Fatal("PutService with an IPv6 backend for an IPv4 VIP succeeded")
	}
	if _, ids, _, err := f.maps.LookupService(cluster); err != nil || len(ids) != 0 {
		t.Fatalf("refused PutService changed the service: %v %v", ids, err)
	}
	// ... and the program never uses one that slipped in (raw map write).
	var mt lbLbMaglevTable
	for i := range mt.BackendIds {
		mt.BackendIds[i] = 7
	}
	must(t, f.objs.LbMaglev.Put(uint32(2), &mt))
	must(t, f.objs.LbServices.Put(&lbLbServiceKey{Vip: cluster.VIP.As16(), Port: htons(80), Proto: 6}, &lbLbService{Id: 2, Count: 1}))
	if ret, _ := f.uplink(t, req); ret != actShot || f.drops(t)[DropNoBackend] != 1 {
		t.Fatalf("wrong-family backend: ret %d drops %v", int32(ret), f.drops(t))
	}
}

func TestPassUntouched(t *testing.T) {
	f := newFixture(t)
	// vip has a service but is not in lb_vips (e.g. only its service entry
	// exists yet); marked is an announced VIP (PutVIP).
	vip, marked := netip.MustParseAddr("203.0.113.60"), netip.MustParseAddr("203.0.113.61")
	must(t, f.maps.PutBackend(1, Backend{Addr: ap("198.19.1.1:80"), Ifindex: 3}))
	must(t, f.maps.PutService(ServiceKey{VIP: vip, Port: 80, Proto: ProtoTCP}, Service{ID: 1}, []uint32{1}))
	must(t, f.maps.PutService(ServiceKey{VIP: marked, Port: 80, Proto: ProtoTCP}, Service{ID: 2}, []uint32{1}))
	must(t, f.maps.PutVIP(marked))
	client := ap("198.51.100.10:5555")
	arp := append(append(append([]byte{}, macNode...), macClient...), 0x08, 0x06)
	arp = append(arp, make([]byte, 28)...)
	foreign := func(to netip.Addr) map[string][]byte {
		return map[string][]byte{
			"other port":  buildPacket(pktSpec{src: client, dst: netip.AddrPortFrom(to, 81), proto: ipProtoTCP}),
			"udp to tcp":  buildPacket(pktSpec{src: client, dst: netip.AddrPortFrom(to, 80), proto: ipProtoUDP}),
			"other proto": buildPacket(pktSpec{src: client, dst: netip.AddrPortFrom(to, 0), proto: 47, payload: make([]byte, 16)}),
		}
	}
	pass := foreign(vip)
	pass["other addr"] = buildPacket(pktSpec{src: client, dst: ap("198.19.1.1:80"), proto: ipProtoTCP})
	pass["arp"] = arp
	pass["eth only"] = arp[:14]
	for name, pkt := range pass {
		if ret, out := f.uplink(t, pkt); ret != actNext || !bytes.Equal(out, pkt) {
			t.Errorf("%s: ret %d, changed %v", name, int32(ret), !bytes.Equal(out, pkt))
		}
		if ret, out := f.pod(t, pkt); ret != actNext || !bytes.Equal(out, pkt) {
			t.Errorf("pod %s: ret %d, changed %v", name, int32(ret), !bytes.Equal(out, pkt))
		}
	}
	if d := f.drops(t); len(d) != 0 {
		t.Fatalf("drops %v, want none", d)
	}
	// The same to an announced VIP: dropped (the kernel would route it back
	// to the router), counted; the pod program still ignores them.
	for name, pkt := range foreign(marked) {
		if ret, _ := f.uplink(t, pkt); ret != actShot {
			t.Errorf("%s to an announced VIP: ret %d, want drop", name, int32(ret))
		}
		if ret, out := f.pod(t, pkt); ret != actNext || !bytes.Equal(out, pkt) {
			t.Errorf("pod %s: ret %d", name, int32(ret))
		}
	}
	if n := f.drops(t)[DropNoService]; n != 3 {
		t.Fatalf("noService drops = %d, want 3", n)
	}
}

func TestMalformed(t *testing.T) {
	f := newFixture(t)
	vip4, vip6 := netip.MustParseAddr("203.0.113.70"), netip.MustParseAddr("2001:db8:ffff::70")
	must(t, f.maps.PutBackend(1, Backend{Addr: ap("198.19.1.1:80"), Ifindex: 3}))
	must(t, f.maps.PutBackend(2, Backend{Addr: ap("[2001:db8:1:1::1]:80"), Ifindex: 3}))
	for _, v := range []netip.Addr{vip4, vip6} {
		id := uint32(1)
		if v.Is6() {
			id = 2
		}
		must(t, f.maps.PutService(ServiceKey{VIP: v, Port: 80, Proto: ProtoTCP}, Service{ID: id}, []uint32{id}))
		must(t, f.maps.PutVIP(v))
	}

	// Every truncation of valid packets: no error from the kernel, only
	// known verdicts, and an untouched packet whenever it is passed on.
	for _, v := range []netip.Addr{vip4, vip6} {
		client := ap("198.51.100.10:5555")
		if v.Is6() {
			client = ap("[2001:db8:c::10]:5555")
		}
		for _, proto := range []uint8{ipProtoTCP, ipProtoUDP, ipProtoICMP, ipProtoICMPv6} {
			full := buildPacket(pktSpec{src: client, dst: netip.AddrPortFrom(v, 80), proto: proto, icmpType: 8})
			for n := 14; n < len(full); n++ {
				pkt := full[:n]
				for _, prog := range []*ebpf.Program{f.objs.LbUplink, f.objs.LbPod} {
					ret, out, err := runRaw(prog, pkt)
					if err != nil {
						if harnessRejects(pkt) {
							continue
						}
						t.Fatalf("%v proto %d len %d: %v", prog, proto, n, err)
					}
					switch ret {
					case actNext:
						if !bytes.Equal(out, pkt) {
							t.Fatalf("%v proto %d len %d: passed but changed", prog, proto, n)
						}
					case actShot, actRedirect:
					default:
						t.Fatalf("%v proto %d len %d: verdict %d", prog, proto, n, int32(ret))
					}
				}
			}
		}
	}
	// A TCP header cut short, to a VIP: dropped as malformed.
	full := buildPacket(pktSpec{src: ap("198.51.100.10:5555"), dst: netip.AddrPortFrom(vip4, 80), proto: ipProtoTCP})
	before := f.drops(t)[DropMalformed]
	if ret, _ := f.uplink(t, full[:14+20+10]); ret != actShot || f.drops(t)[DropMalformed] != before+1 {
		t.Fatalf("truncated TCP to VIP: ret %d drops %v", int32(ret), f.drops(t))
	}
	// IPv4 fragments to a VIP are dropped and counted.
	frag := buildPacket(pktSpec{src: ap("198.51.100.10:5555"), dst: netip.AddrPortFrom(vip4, 80), proto: ipProtoUDP, fragment: true})
	if ret, _ := f.uplink(t, frag); ret != actShot || f.drops(t)[DropFragment] != 1 {
		t.Fatalf("fragment to VIP: ret %d drops %v", int32(ret), f.drops(t))
	}
	// A bad IP version or header length passes untouched.
	bad := bytes.Clone(full)
	bad[14] = 0x44 // ihl 4 < 5
	if ret, out := f.uplink(t, bad); ret != actNext || !bytes.Equal(out, bad) {
		t.Fatalf("ihl 4: ret %d", int32(ret))
	}
}
