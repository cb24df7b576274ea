//go:build linux

package bpf

// Reverse NAT, ICMP errors and the ABI constants shared with lb.h.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

func TestReverseNATFollowsRequestPath(t *testing.T) {
	f := newFixture(t)
	vip, backend, client := ap("203.0.113.80:80"), ap("198.19.1.8:8080"), ap("198.51.100.10:41000")
	key := ServiceKey{VIP: vip.Addr(), Port: 80, Proto: ProtoTCP}
	must(t, f.maps.PutBackend(8, Backend{Addr: backend, Ifindex: 8}))
	must(t, f.maps.PutService(key, Service{ID: 8}, []uint32{8}))
	router2 := []byte{0x02, 0xc1, 0x1e, 0x00, 0x00, 0x02}
	const synFlag = 0x02

	replyTo := func(want []byte) {
		t.Helper()
		reply := buildPacket(pktSpec{srcMAC: macPod, dstMAC: macVeth, src: backend, dst: client, proto: ipProtoTCP})
		ret, out := f.pod(t, reply)
		if ret != actRedirect {
			t.Fatalf("reply: ret %d", int32(ret))
		}
		if d := mustDecode(t, out); !bytes.Equal(d.dstMAC, want) || d.src != vip {
			t.Fatalf("reply to %v from %v, want to %x from %v", d.dstMAC, d.src, want, vip)
		}
	}
	request := func(mac []byte, flags uint8, seq uint32) {
		t.Helper()
		req := buildPacket(pktSpec{srcMAC: mac, src: client, dst: vip, proto: ipProtoTCP, tcpFlags: flags, seq: seq})
		if ret, _ := f.uplink(t, req); ret != actRedirect {
			t.Fatalf("request from %x: ret %d", mac, int32(ret))
		}
	}

	request(macClient, synFlag, 5000) // the connection comes in through router 1
	replyTo(macClient)
	// A packet of the known flow from another MAC (a spoofer who knows the
	// 5-tuple, or a stray path) is delivered but does not re-point the replies.
	request(router2, 0, 0)
	replyTo(macClient)
	// A new connection (new ISN) on the same tuple through router 2 does.
	request(router2, synFlag, 9000)
	replyTo(router2)

	// Recreated service (new id) with a new backend: the flow re-picks.
	must(t, f.maps.DeleteService(key))
	must(t, f.maps.PutBackend(9, Backend{Addr: ap("198.19.1.9:8080"), Ifindex: 9}))
	must(t, f.maps.PutService(key, Service{ID: 9}, []uint32{9}))
	req := buildPacket(pktSpec{src: client, dst: vip, proto: ipProtoTCP, tcpFlags: synFlag, seq: 12000})
	ret, out := f.uplink(t, req)
	if ret != actRedirect || mustDecode(t, out).dst != ap("198.19.1.9:8080") {
		t.Fatalf("flow of a recreated service: ret %d dst %v", int32(ret), mustDecode(t, out).dst)
	}
	if st, _ := f.maps.ServiceStats(8); st.Packets != 0 {
		t.Fatalf("counters of the deleted service still present: %+v", st)
	}
}

// TestICMPErrorToBackend: an ICMP "fragmentation needed" / ICMPv6 "packet too
// big" quoting a reply we sent from the VIP reaches the flow's backend,
// translated so the pod's stack matches it to its socket.
func TestICMPErrorToBackend(t *testing.T) {
	f := newFixture(t)
	for i, c := range []struct {
		vip, backend, client netip.AddrPort
		router               netip.Addr
		proto, icmpType      uint8
		quoteLen             int
	}{
		{ap("203.0.113.90:80"), ap("198.19.1.9:8080"), ap("198.51.100.10:42000"), netip.MustParseAddr("198.51.100.1"), ipProtoICMP, 3, 20 + 8},
		{ap("[2001:db8:ffff::90]:80"), ap("[2001:db8:1:1::9]:8080"), ap("[2001:db8:c::10]:42000"), netip.MustParseAddr("2001:db8:c::1"), ipProtoICMPv6, 2, 40 + 8},
	} {
		id := uint32(90 + i)
		must(t, f.maps.PutBackend(id, Backend{Addr: c.backend, Ifindex: 9}))
		must(t, f.maps.PutService(ServiceKey{VIP: c.vip.Addr(), Port: 80, Proto: ProtoTCP}, Service{ID: id}, []uint32{id}))
		must(t, f.maps.PutVIP(c.vip.Addr()))

		// The reply as it left the node (from the VIP), quoted by the router.
		sent := buildPacket(pktSpec{src: c.vip, dst: c.client, proto: ipProtoTCP, payload: make([]byte, 64)})
		quote := sent[14 : 14+c.quoteLen]
		icmpErr := buildPacket(pktSpec{src: netip.AddrPortFrom(c.router, 0), dst: netip.AddrPortFrom(c.vip.Addr(), 0), proto: c.proto, icmpType: c.icmpType, payload: quote})

		// Not tracked yet (e.g. quoting a VIP port without a service): dropped and counted.
		before := f.drops(t)[DropNoService]
		if ret, _ := f.uplink(t, icmpErr); ret != actShot || f.drops(t)[DropNoService] != before+1 {
			t.Fatalf("error about an untracked flow: ret %d, want dropped and counted", int32(ret))
		}
		if ret, _ := f.uplink(t, buildPacket(pktSpec{src: c.client, dst: c.vip, proto: ipProtoTCP})); ret != actRedirect {
			t.Fatalf("request: ret %d", int32(ret))
		}
		ret, out := f.uplink(t, icmpErr)
		if ret != actRedirect {
			t.Fatalf("error about a tracked flow: ret %d, want redirect", int32(ret))
		}
		d := mustDecode(t, out) // verifies the (ICMPv6 pseudo-header) checksum
		if d.dst.Addr() != c.backend.Addr() || d.src.Addr() != c.router || d.icmpType != c.icmpType {
			t.Fatalf("outer %v -> %v type %d", d.src, d.dst, d.icmpType)
		}
		// The quoted packet now reads backend:port -> client:port.
		inner := d.payload
		var isrc, idst netip.Addr
		var ports []byte
		if c.vip.Addr().Is4() {
			if csumFold(csumAdd(0, inner[:20])) != 0xffff {
				t.Fatalf("quoted IPv4 header checksum wrong: % x", inner[:20])
			}
			isrc, idst, ports = netip.AddrFrom4([4]byte(inner[12:16])), netip.AddrFrom4([4]byte(inner[16:20])), inner[20:24]
		} else {
			isrc, idst, ports = netip.AddrFrom16([16]byte(inner[8:24])), netip.AddrFrom16([16]byte(inner[24:40])), inner[40:44]
		}
		gotSrc := netip.AddrPortFrom(isrc, binary.BigEndian.Uint16(ports))
		gotDst := netip.AddrPortFrom(idst, binary.BigEndian.Uint16(ports[2:]))
		if gotSrc != c.backend || gotDst != c.client {
			t.Fatalf("quoted packet %v -> %v, want %v -> %v", gotSrc, gotDst, c.backend, c.client)
		}
	}
}

// TestABIConstants checks the Go constants against the compiled object.
func TestABIConstants(t *testing.T) {
	spec, err := loadLb()
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.Maps["lb_maglev"].ValueSize; got != 4*MaglevM {
		t.Fatalf("lb_maglev value size %d, want 4*MaglevM = %d", got, 4*MaglevM)
	}
	if got := spec.Maps["lb_drops"].MaxEntries; got != uint32(dropMax) {
		t.Fatalf("lb_drops has %d entries, want %d", got, dropMax)
	}
	for name, m := range spec.Maps {
		if name == ".rodata" {
			continue // lb_hash_seed: per load, set by SetHashSeed, never shared
		}
		if m.Pinning != ebpf.PinByName {
			t.Errorf("map %s is not pinned by name", name)
		}
	}
	// The big-endian object declares the same maps and programs.
	be, err := ebpf.LoadCollectionSpec("lb_bpfeb.o")
	if err != nil {
		t.Fatal(err)
	}
	if be.ByteOrder.String() != "BigEndian" || len(be.Maps) != len(spec.Maps) || len(be.Programs) != len(spec.Programs) {
		t.Fatalf("lb_bpfeb.o: order %v, %d maps, %d programs", be.ByteOrder, len(be.Maps), len(be.Programs))
	}
	for name, m := range spec.Maps {
		if b := be.Maps[name]; b == nil || b.KeySize != m.KeySize || b.ValueSize != m.ValueSize || b.MaxEntries != m.MaxEntries || b.Flags != m.Flags {
			t.Errorf("map %s differs between lb_bpfel.o and lb_bpfeb.o", name)
		}
	}
}

// TestReverseNATStaleEntries: reverse-NAT entries outlive their flows; a later
// flow between the same pod and client ports that did not come through the
// VIP must not be rewritten.
func TestReverseNATStaleEntries(t *testing.T) {
	f := newFixture(t)
	vip, backend, client := ap("203.0.113.85:80"), ap("198.19.1.8:8080"), ap("198.51.100.10:43000")
	must(t, f.maps.PutBackend(8, Backend{Addr: backend, Ifindex: 8}))
	must(t, f.maps.PutService(ServiceKey{VIP: vip.Addr(), Port: 80, Proto: ProtoTCP}, Service{ID: 8}, []uint32{8}))
	must(t, f.maps.PutService(ServiceKey{VIP: vip.Addr(), Port: 80, Proto: ProtoUDP}, Service{ID: 9}, []uint32{8}))
	const synFlag, synAck = 0x02, 0x12

	// TCP through the VIP: the SYN-ACK acknowledging the client's ISN is translated.
	syn := buildPacket(pktSpec{src: client, dst: vip, proto: ipProtoTCP, tcpFlags: synFlag, seq: 7000})
	if ret, _ := f.uplink(t, syn); ret != actRedirect {
		t.Fatalf("SYN: ret %d", int32(ret))
	}
	sa := buildPacket(pktSpec{srcMAC: macPod, dstMAC: macVeth, src: backend, dst: client, proto: ipProtoTCP, tcpFlags: synAck, seq: 900, ack: 7001})
	if ret, out := f.pod(t, sa); ret != actRedirect || mustDecode(t, out).src != vip {
		t.Fatalf("SYN-ACK of the VIP flow: ret %d", int32(ret))
	}
	// Later the client talks to the pod directly from the same port: the
	// pod's SYN-ACK acknowledges another ISN and everything stays untouched. In this
	// order: the SYN-ACK is what tells the entry is stale (a data packet alone cannot).
	sa2 := buildPacket(pktSpec{srcMAC: macPod, dstMAC: macVeth, src: backend, dst: client, proto: ipProtoTCP, tcpFlags: synAck, seq: 5000, ack: 123457})
	data := buildPacket(pktSpec{srcMAC: macPod, dstMAC: macVeth, src: backend, dst: client, proto: ipProtoTCP, seq: 5001, ack: 123457, payload: []byte("direct")})
	for _, step := range []struct {
		name string
		pkt  []byte
	}{{"SYN-ACK", sa2}, {"data", data}} {
		if ret, out := f.pod(t, step.pkt); ret != actNext || !bytes.Equal(out, step.pkt) {
			t.Fatalf("direct flow %s: ret %d, changed %v", step.name, int32(ret), !bytes.Equal(out, step.pkt))
		}
	}
	// A new connection through the VIP on the same tuple works again.
	syn = buildPacket(pktSpec{src: client, dst: vip, proto: ipProtoTCP, tcpFlags: synFlag, seq: 9000})
	if ret, _ := f.uplink(t, syn); ret != actRedirect {
		t.Fatalf("second SYN: ret %d", int32(ret))
	}
	sa = buildPacket(pktSpec{srcMAC: macPod, dstMAC: macVeth, src: backend, dst: client, proto: ipProtoTCP, tcpFlags: synAck, seq: 100, ack: 9001})
	if ret, out := f.pod(t, sa); ret != actRedirect || mustDecode(t, out).src != vip {
		t.Fatalf("SYN-ACK of the second VIP flow: ret %d", int32(ret))
	}

	// UDP: an entry idle for longer than LB_UDP_IDLE_NS is stale.
	req := buildPacket(pktSpec{src: client, dst: vip, proto: ipProtoUDP})
	if ret, _ := f.uplink(t, req); ret != actRedirect {
		t.Fatalf("UDP request: ret %d", int32(ret))
	}
	reply := buildPacket(pktSpec{srcMAC: macPod, dstMAC: macVeth, src: backend, dst: client, proto: ipProtoUDP})
	if ret, out := f.pod(t, reply); ret != actRedirect || mustDecode(t, out).src != vip {
		t.Fatalf("UDP reply: ret %d", int32(ret))
	}
	var ts unix.Timespec
	must(t, unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts))
	rk := lbLbRevnatKey{Saddr: backend.Addr().As16(), Daddr: client.Addr().As16(), Sport: htons(backend.Port()), Dport: htons(client.Port()), Proto: ipProtoUDP}
	var rn lbLbRevnatEntry
	must(t, f.objs.LbRevnat.Lookup(&rk, &rn))
	rn.LastNs = uint64(ts.Nano()) - 121e9
	must(t, f.objs.LbRevnat.Put(&rk, &rn))
	if ret, out := f.pod(t, reply); ret != actNext || !bytes.Equal(out, reply) {
		t.Fatalf("reply on an idle UDP entry: ret %d, want untouched", int32(ret))
	}
	if err := f.objs.LbRevnat.Lookup(&rk, &rn); !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.Fatalf("idle UDP entry not deleted: %v", err)
	}
}
