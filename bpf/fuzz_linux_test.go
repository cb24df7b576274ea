//go:build linux

package bpf

// Fuzzing the uplink and pod programs with malformed packets.

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
)

func seedPackets() [][]byte {
	var seeds [][]byte
	for _, c := range natCases() {
		seeds = append(seeds, buildPacket(pktSpec{src: c.client, dst: c.vip, proto: c.proto, payload: []byte("x")}))
		seeds = append(seeds, buildPacket(pktSpec{srcMAC: macPod, dstMAC: macVeth, src: c.backend, dst: c.client, proto: c.proto}))
	}
	seeds = append(seeds,
		buildPacket(pktSpec{src: ap("198.51.100.10:0"), dst: ap("203.0.113.10:0"), proto: ipProtoICMP, icmpType: 8}),
		buildPacket(pktSpec{src: ap("[2001:db8:c::10]:0"), dst: ap("[2001:db8:ffff::10]:0"), proto: ipProtoICMPv6, icmpType: 128}),
		buildPacket(pktSpec{src: ap("198.51.100.10:1"), dst: ap("203.0.113.10:80"), proto: ipProtoUDP, fragment: true}),
	)
	// ICMP errors quoting replies of the natCases flows.
	for _, c := range natCases() {
		sent := buildPacket(pktSpec{src: c.vip, dst: c.client, proto: c.proto})
		typ, proto, n := uint8(3), uint8(ipProtoICMP), 14+20+8
		if c.vip.Addr().Is6() {
			typ, proto, n = 2, ipProtoICMPv6, 14+40+8
		}
		seeds = append(seeds, buildPacket(pktSpec{src: netip.AddrPortFrom(c.client.Addr(), 0), dst: netip.AddrPortFrom(c.vip.Addr(), 0), proto: proto, icmpType: typ, payload: sent[14:n]}))
	}
	return seeds
}

// fuzzFixture programs every natCase service (and its VIP) so fuzzed
// packets reach the NAT, conntrack and echo paths.
func fuzzFixture(f *testing.F) *fixture {
	fx := newFixture(f)
	for i, c := range natCases() {
		must(f, fx.maps.PutBackend(uint32(100+i), Backend{Addr: c.backend, Ifindex: 40 + i}))
		must(f, fx.maps.PutService(ServiceKey{VIP: c.vip.Addr(), Port: c.vip.Port(), Proto: Proto(c.proto)}, Service{ID: uint32(10 + i)}, []uint32{uint32(100 + i)}))
		must(f, fx.maps.PutVIP(c.vip.Addr()))
	}
	return fx
}

func fuzzProgram(f *testing.F, prog func(*fixture) *ebpf.Program) {
	for _, s := range seedPackets() {
		f.Add(s)
	}
	fx := fuzzFixture(f)
	p := prog(fx)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		if len(pkt) > 1514 {
			t.Skip("keep to one MTU")
		}
		ret, out, err := runRaw(p, pkt)
		if err != nil {
			if harnessRejects(pkt) {
				return
			}
			t.Fatalf("run: %v", err)
		}
		switch ret {
		case actNext:
			if !bytes.Equal(out, pkt) {
				t.Fatalf("passed on but modified:\nin  % x\nout % x", pkt, out)
			}
		case actShot:
		case actRedirect:
			if len(out) != len(pkt) {
				t.Fatalf("redirected packet changed length %d -> %d", len(pkt), len(out))
			}
		default:
			t.Fatalf("unexpected verdict %d", int32(ret))
		}
	})
}

// FuzzUplink feeds arbitrary frames to lb_uplink: it must never fail to run,
// must return a known verdict, and must leave every packet it passes on unchanged.
// The seed corpus runs with plain `go test`; to fuzz:
//
//	go test -run XXX -fuzz FuzzUplink -fuzztime 60s -fuzzminimizetime 10x ./bpf/
//
// (-fuzzminimizetime keeps the fuzzer from spending minutes minimizing the
// inputs that cilium/ebpf's nondeterministic coverage marks as interesting.)
func FuzzUplink(f *testing.F) {
	fuzzProgram(f, func(fx *fixture) *ebpf.Program { return fx.objs.LbUplink })
}

// FuzzPod is FuzzUplink for lb_pod (replies are tracked by the seeds' uplink flows only
// when the fuzzer finds them; the invariants are the same).
func FuzzPod(f *testing.F) {
	fuzzProgram(f, func(fx *fixture) *ebpf.Program { return fx.objs.LbPod })
}

// TestReverseNATFollowsRequestPath: replies go back toward the router (MAC)
// that the flow's connection came from; only a new connection re-points them
// (anti-spoofing), and a service deleted and recreated under a new id does not
// reuse the old flow's backend choice blindly.
