//go:build linux

package bpf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
)

// skbIngressIfindexOff is __sk_buff.ingress_ifindex (skb->skb_iif), which
// BPF_PROG_TEST_RUN takes from the context: the interface a forwarded packet
// entered the node on, as lb_egress sees it.
const skbIngressIfindexOff = 36

// egressFrom runs lb_egress on pkt as a packet forwarded by the node's stack that
// entered on interface ingressIfindex (a veth with that index is created in the
// fixture's namespace) and leaves on lo.
func (f *fixture) egressFrom(tb testing.TB, ingressIfindex int, pkt []byte) (uint32, []byte) {
	tb.Helper()
	if f.ns == nil {
		f.ns = newNetns(tb)
		f.ifs = map[int]bool{}
	}
	if !f.ifs[ingressIfindex] {
		run(tb, "ip", "-n", f.ns.name, "link", "add", fmt.Sprintf("d%d", ingressIfindex), "index", fmt.Sprint(ingressIfindex),
			"type", "veth", "peer", "name", fmt.Sprintf("p%d", ingressIfindex), "index", fmt.Sprint(ingressIfindex+1000))
		f.ifs[ingressIfindex] = true
	}
	var (
		ret uint32
		out []byte
	)
	f.ns.do(tb, func() error {
		ctx := make([]byte, skbCtxSize)
		binary.NativeEndian.PutUint32(ctx[skbIngressIfindexOff:], uint32(ingressIfindex))
		opts := ebpf.RunOptions{Data: pkt, DataOut: make([]byte, len(pkt)+256), Context: ctx}
		var err error
		ret, err = f.objs.LbEgress.Run(&opts)
		out = opts.DataOut
		return err
	})
	return ret, out
}

// TestStackDelivery: with the default delivery lb_uplink rewrites the destination and
// passes the packet on (TCX_NEXT: the stack routes it, netfilter and the primary CNI
// see it); lb_pod leaves the replies to the stack; lb_egress, after the stack, turns a
// reply that entered on the backend's own veth back into a VIP reply with the request's
// MACs (and passes it on: it leaves through the interface the request came in on).
// TCP/UDP over IPv4/IPv6, checksums verified by the independent decoder.
func TestStackDelivery(t *testing.T) {
	for i, c := range natCases() {
		t.Run(c.name, func(t *testing.T) {
			f := newFixtureDelivery(t, DeliveryStack)
			svcID, beID, ifidx := uint32(10+i), uint32(100+i), 40+i
			key := ServiceKey{VIP: c.vip.Addr(), Port: c.vip.Port(), Proto: Proto(c.proto)}
			must(t, f.maps.PutBackend(beID, Backend{Addr: c.backend, Ifindex: ifidx}))
			must(t, f.maps.PutService(key, Service{ID: svcID, Local: true}, []uint32{beID}))

			payload := []byte("hello, backend! odd length.")
			req := buildPacket(pktSpec{src: c.client, dst: c.vip, proto: c.proto, payload: payload, udpNoCsum: c.udpNoCsum})
			ret, out := f.uplink(t, req)
			if ret != actNext {
				t.Fatalf("uplink returned %d, want next: the stack delivers", int32(ret))
			}
			d := mustDecode(t, out)
			if d.dst != c.backend || d.src != c.client || !bytes.Equal(d.payload, payload) {
				t.Fatalf("after DNAT %v -> %v %q, want %v -> %v", d.src, d.dst, d.payload, c.client, c.backend)
			}
			if c.wantZeroCsum && d.l4Csum != 0 {
				t.Fatalf("UDP checksum 0 became %#04x", d.l4Csum)
			}

			reply := buildPacket(pktSpec{srcMAC: macPod, dstMAC: macVeth, src: c.backend, dst: c.client, proto: c.proto, payload: []byte("reply"), udpNoCsum: c.udpNoCsum})
			// On the pod's veth the reply is left to the stack.
			if ret, out := f.podOn(t, ifidx, reply); ret != actNext || !bytes.Equal(out[:len(reply)], reply) {
				t.Fatalf("lb_pod on a stack-delivered flow: ret %d, changed %v", int32(ret), !bytes.Equal(out[:len(reply)], reply))
			}
			// Forwarded from another interface (a neighbouring pod forging it): untouched.
			if ret, out := f.egressFrom(t, ifidx+100, reply); ret != actNext || !bytes.Equal(out[:len(reply)], reply) {
				t.Fatalf("forged reply from ifindex %d: ret %d, changed %v", ifidx+100, int32(ret), !bytes.Equal(out[:len(reply)], reply))
			}
			ret, out = f.egressFrom(t, ifidx, reply)
			if ret != actNext {
				t.Fatalf("lb_egress returned %d, want next (it leaves where the request came in)", int32(ret))
			}
			d = mustDecode(t, out)
			if d.src != c.vip || d.dst != c.client || string(d.payload) != "reply" {
				t.Fatalf("after reverse NAT %v -> %v, want %v -> %v", d.src, d.dst, c.vip, c.client)
			}
			if d.dstMAC.String() != macClient.String() || d.srcMAC.String() != macNode.String() {
				t.Fatalf("reply MACs %v -> %v, want %v -> %v", d.srcMAC, d.dstMAC, macNode, macClient)
			}
			if c.wantZeroCsum && d.l4Csum != 0 {
				t.Fatalf("UDP checksum 0 became %#04x", d.l4Csum)
			}
		})
	}
}

// TestDeliveryRecordedPerFlow: lb_pod handles only the replies of flows the uplink
// redirected, lb_egress only the others, so the two never both rewrite a reply and a
// daemon restarted with the other delivery moves a flow's replies with its requests.
func TestDeliveryRecordedPerFlow(t *testing.T) {
	client, vip, backend := ap("198.51.100.10:42000"), ap("203.0.113.90:80"), ap("198.19.1.9:8080")
	const ifidx = 33
	direct := newFixtureDelivery(t, DeliveryRedirect)
	must(t, direct.maps.PutBackend(1, Backend{Addr: backend, Ifindex: ifidx}))
	must(t, direct.maps.PutService(ServiceKey{VIP: vip.Addr(), Port: 80, Proto: ProtoTCP}, Service{ID: 1}, []uint32{1}))
	if ret, _ := direct.uplink(t, buildPacket(pktSpec{src: client, dst: vip, proto: ipProtoTCP})); ret != actRedirect {
		t.Fatalf("redirect delivery: uplink ret %d", int32(ret))
	}
	reply := buildPacket(pktSpec{srcMAC: macPod, dstMAC: macVeth, src: backend, dst: client, proto: ipProtoTCP})
	if ret, out := direct.egressFrom(t, ifidx, reply); ret != actNext || !bytes.Equal(out[:len(reply)], reply) {
		t.Fatalf("lb_egress on a redirected flow: ret %d, changed %v", int32(ret), !bytes.Equal(out[:len(reply)], reply))
	}
	if ret, out := direct.podOn(t, ifidx, reply); ret != actRedirect || mustDecode(t, out).src != vip {
		t.Fatalf("lb_pod on a redirected flow: ret %d", int32(ret))
	}
}

// TestICMPErrorToStack: with the default delivery an ICMP error about a tracked flow is
// translated for the backend and passed on to the stack (not dropped as "no service").
func TestICMPErrorToStack(t *testing.T) {
	f := newFixtureDelivery(t, DeliveryStack)
	client, vip, backend := ap("198.51.100.10:43000"), ap("203.0.113.91:80"), ap("198.19.1.9:8080")
	must(t, f.maps.PutBackend(1, Backend{Addr: backend, Ifindex: 34}))
	must(t, f.maps.PutService(ServiceKey{VIP: vip.Addr(), Port: 80, Proto: ProtoTCP}, Service{ID: 1}, []uint32{1}))
	must(t, f.maps.PutVIP(vip.Addr()))
	if ret, _ := f.uplink(t, buildPacket(pktSpec{src: client, dst: vip, proto: ipProtoTCP})); ret != actNext {
		t.Fatalf("request: ret %d", int32(ret))
	}
	sent := buildPacket(pktSpec{src: vip, dst: client, proto: ipProtoTCP, payload: make([]byte, 64)})
	icmpErr := buildPacket(pktSpec{src: netip.AddrPortFrom(netip.MustParseAddr("198.51.100.1"), 0), dst: netip.AddrPortFrom(vip.Addr(), 0),
		proto: ipProtoICMP, icmpType: 3, payload: sent[14 : 14+20+8]})
	before := f.drops(t)
	ret, out := f.uplink(t, icmpErr)
	if ret != actNext {
		t.Fatalf("ICMP error: ret %d, want next (to the stack)", int32(ret))
	}
	if got := netip.AddrFrom4([4]byte(out[14+16 : 14+20])); got != backend.Addr() {
		t.Fatalf("ICMP error sent to %v, want the backend %v", got, backend.Addr())
	}
	if after := f.drops(t); after[DropNoService] != before[DropNoService] {
		t.Fatalf("ICMP error counted as dropped: %v", after)
	}
}
