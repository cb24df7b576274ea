//go:build linux

package bpf

// Packet tests of issue 16's hardening: anti-spoofing, IPv6 extension headers, the
// cluster hash seed and the LRU eviction estimates.

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"
)

// TestForgedReplyNotRewritten: a neighbouring pod that forges a reply of
// another pod's tracked flow (the victim's address and port as source) is not
// rewritten to the VIP, whichever interface it enters on; neither is a reply
// from the backend's interface with another source port.
func TestForgedReplyNotRewritten(t *testing.T) {
	f := newFixture(t)
	for i, c := range []struct{ vip, backend, neighbour, client netip.AddrPort }{
		{ap("203.0.113.81:80"), ap("198.19.1.8:8080"), ap("198.19.1.9:8080"), ap("198.51.100.10:41001")},
		{ap("[2001:db8:ffff::81]:80"), ap("[2001:db8:1:1::8]:8080"), ap("[2001:db8:1:1::9]:8080"), ap("[2001:db8:c::10]:41001")},
	} {
		victimIf, neighbourIf := 20+2*i, 21+2*i
		must(t, f.maps.PutBackend(uint32(victimIf), Backend{Addr: c.backend, Ifindex: victimIf}))
		must(t, f.maps.PutBackend(uint32(neighbourIf), Backend{Addr: c.neighbour, Ifindex: neighbourIf}))
		must(t, f.maps.PutService(ServiceKey{VIP: c.vip.Addr(), Port: 80, Proto: ProtoTCP}, Service{ID: uint32(victimIf)}, []uint32{uint32(victimIf)}))
		if ret, _ := f.uplink(t, buildPacket(pktSpec{src: c.client, dst: c.vip, proto: ipProtoTCP})); ret != actRedirect {
			t.Fatalf("request: ret %d", int32(ret))
		}
		forged := buildPacket(pktSpec{srcMAC: macPod, dstMAC: macVeth, src: c.backend, dst: c.client, proto: ipProtoTCP})
		if ret, out := f.podOn(t, neighbourIf, forged); ret != actNext || !bytes.Equal(out[:len(forged)], forged) {
			t.Fatalf("%v: forged reply from the neighbour's interface: ret %d, want passed on unchanged", c.vip, int32(ret))
		}
		otherPort := buildPacket(pktSpec{srcMAC: macPod, dstMAC: macVeth, src: netip.AddrPortFrom(c.backend.Addr(), 9999), dst: c.client, proto: ipProtoTCP})
		if ret, _ := f.podOn(t, victimIf, otherPort); ret != actNext {
			t.Fatalf("%v: reply from another port: ret %d, want passed on", c.vip, int32(ret))
		}
		// The real reply, on the backend's own interface, is rewritten.
		if ret, out := f.podOn(t, victimIf, forged); ret != actRedirect || mustDecode(t, out).src != c.vip {
			t.Fatalf("%v: real reply: ret %d", c.vip, int32(ret))
		}
	}
}

// withIPv6Ext inserts IPv6 extension headers (each 8 bytes: next header, length 0,
// PadN) of the given types after the fixed header of the IPv6 frame pkt.
func withIPv6Ext(pkt []byte, types ...uint8) []byte {
	const ipOff, nhOff = 14, 14 + 6
	out := append([]byte(nil), pkt[:ipOff+40]...)
	next := pkt[nhOff]
	out[nhOff] = types[0]
	for i := range types {
		nh := next
		if i+1 < len(types) {
			nh = types[i+1]
		}
		out = append(out, nh, 0, 1, 4, 0, 0, 0, 0) // PadN option filling the header
	}
	out = append(out, pkt[ipOff+40:]...)
	binary.BigEndian.PutUint16(out[ipOff+4:], binary.BigEndian.Uint16(pkt[ipOff+4:])+uint16(8*len(types)))
	return out
}

// withoutIPv6Ext undoes withIPv6Ext (n headers).
func withoutIPv6Ext(pkt []byte, n int) []byte {
	const ipOff, nhOff = 14, 14 + 6
	out := append([]byte(nil), pkt[:ipOff+40]...)
	out[nhOff] = pkt[ipOff+40+8*(n-1)] // the last header's next header
	out = append(out, pkt[ipOff+40+8*n:]...)
	binary.BigEndian.PutUint16(out[ipOff+4:], binary.BigEndian.Uint16(pkt[ipOff+4:])-uint16(8*n))
	return out
}

// TestIPv6ExtensionHeaders: hop-by-hop and destination options headers in front
// of TCP are skipped (the request is NATed, checksums stay valid); a packet to a
// VIP behind another extension header (AH) is dropped and counted.
func TestIPv6ExtensionHeaders(t *testing.T) {
	f := newFixture(t)
	vip, backend, client := ap("[2001:db8:ffff::90]:80"), ap("[2001:db8:1:1::90]:8080"), ap("[2001:db8:c::10]:42000")
	must(t, f.maps.PutBackend(90, Backend{Addr: backend, Ifindex: 90}))
	must(t, f.maps.PutService(ServiceKey{VIP: vip.Addr(), Port: 80, Proto: ProtoTCP}, Service{ID: 90}, []uint32{90}))
	must(t, f.maps.PutVIP(vip.Addr()))
	const hop, dst, ah = 0, 60, 51

	req := withIPv6Ext(buildPacket(pktSpec{src: client, dst: vip, proto: ipProtoTCP, payload: []byte("ext")}), hop, dst)
	ret, out := f.uplink(t, req)
	if ret != actRedirect {
		t.Fatalf("request with hop-by-hop + destination options: ret %d, want redirect", int32(ret))
	}
	if d := mustDecode(t, withoutIPv6Ext(out[:len(req)], 2)); d.dst != backend || d.src != client {
		t.Fatalf("NATed request %v -> %v, want %v -> %v", d.src, d.dst, client, backend)
	}
	reply := withIPv6Ext(buildPacket(pktSpec{srcMAC: macPod, dstMAC: macVeth, src: backend, dst: client, proto: ipProtoTCP}), dst)
	ret, out = f.pod(t, reply)
	if ret != actRedirect {
		t.Fatalf("reply with destination options: ret %d, want redirect", int32(ret))
	}
	if d := mustDecode(t, withoutIPv6Ext(out[:len(reply)], 1)); d.src != vip {
		t.Fatalf("reply from %v, want %v", d.src, vip)
	}

	before := f.drops(t)[DropNoService]
	withAH := withIPv6Ext(buildPacket(pktSpec{src: client, dst: vip, proto: ipProtoTCP}), ah)
	if ret, _ := f.uplink(t, withAH); ret != actShot || f.drops(t)[DropNoService] != before+1 {
		t.Fatalf("request behind AH: ret %d, want dropped and counted", int32(ret))
	}
}

// TestHashSeed: the Maglev slot of a flow depends on the seed (SetHashSeed): the
// same seed picks the same backends (every node of a cluster agrees), another
// seed other ones (a client cannot precompute ports that all hit one backend).
func TestHashSeed(t *testing.T) {
	vip := ap("203.0.113.95:80")
	picks := func(seed uint32) []netip.Addr {
		SetHashSeed(seed)
		defer SetHashSeed(0)
		f := newFixture(t)
		var ids []uint32
		for id := uint32(1); id <= 4; id++ {
			must(t, f.maps.PutBackend(id, Backend{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 19, 1, byte(id)}), 8080), Ifindex: 3}))
			ids = append(ids, id)
		}
		must(t, f.maps.PutService(ServiceKey{VIP: vip.Addr(), Port: 80, Proto: ProtoTCP}, Service{ID: 1}, ids))
		var out []netip.Addr
		for port := uint16(43000); port < 43064; port++ {
			out = append(out, f.flowBackend(t, vip, port))
		}
		return out
	}
	a, again, b := picks(0x5eed1), picks(0x5eed1), picks(0x5eed2)
	if !slices.Equal(a, again) {
		t.Fatal("the same seed picked different backends")
	}
	same := 0
	for i := range a {
		if a[i] == b[i] {
			same++
		}
	}
	if same > len(a)/2 {
		t.Fatalf("seeds 0x5eed1 and 0x5eed2 agree on %d of %d flows; want about a quarter", same, len(a))
	}
}

// TestLRUEvictions: entries pushed out of the conntrack and reverse-NAT LRU maps show in
// LRUEvictions (the kernel reports no evictions; the estimate is created - deleted - live).
func TestLRUEvictions(t *testing.T) {
	f := newFixture(t)
	vip := ap("203.0.113.96:80")
	must(t, f.maps.PutBackend(1, Backend{Addr: ap("198.19.1.96:8080"), Ifindex: 3}))
	must(t, f.maps.PutService(ServiceKey{VIP: vip.Addr(), Port: 80, Proto: ProtoTCP}, Service{ID: 1}, []uint32{1}))
	ev, err := f.maps.LRUEvictions()
	if err != nil || ev != (Evictions{}) {
		t.Fatalf("empty maps: %+v, %v", ev, err)
	}
	// Twice as many flows as lb_ct holds, from distinct clients.
	n := 2 * int(f.objs.LbCt.MaxEntries())
	for i := range n {
		client := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, byte(100 + i>>16), byte(i >> 8)}), uint16(1024+i&0xff))
		if ret, _ := f.uplink(t, buildPacket(pktSpec{src: client, dst: vip, proto: ipProtoTCP})); ret != actRedirect {
			t.Fatalf("flow %d: ret %d", i, int32(ret))
		}
	}
	ev, err = f.maps.LRUEvictions()
	if err != nil {
		t.Fatal(err)
	}
	// At least the flows beyond the map size were evicted (LRU may evict a bit early).
	if ev.CT < uint64(n/2) || ev.CT > uint64(n) || ev.RevNAT < uint64(n/2) || ev.RevNAT > uint64(n) {
		t.Fatalf("after %d flows into maps of %d: evictions %+v", n, f.objs.LbCt.MaxEntries(), ev)
	}
}
