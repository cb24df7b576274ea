//go:build linux

package bpf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
)

// A small, independent packet encoder/decoder for the packet tests: it
// computes and verifies checksums itself (RFC 1071), so the tests do not
// trust the datapath's incremental checksum updates.

const (
	ipProtoICMP   = 1
	ipProtoTCP    = 6
	ipProtoUDP    = 17
	ipProtoICMPv6 = 58
)

type pktSpec struct {
	srcMAC, dstMAC net.HardwareAddr
	src, dst       netip.AddrPort
	proto          uint8
	tcpFlags       uint8  // default ACK|PSH
	seq, ack       uint32 // TCP; default 1000, 2000
	icmpType       uint8
	payload        []byte
	udpNoCsum      bool // IPv4 UDP with checksum 0
	fragment       bool // IPv4: more-fragments set
}

// csumAdd is the one's-complement sum of b (odd length padded with zero).
func csumAdd(sum uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	return sum
}

func csumFold(sum uint32) uint16 {
	for sum > 0xffff {
		sum = (sum & 0xffff) + sum>>16
	}
	return uint16(sum)
}

func pseudoSum(src, dst netip.Addr, proto uint8, l4len int) uint32 {
	var sum uint32
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		sum = csumAdd(sum, s[:])
		sum = csumAdd(sum, d[:])
		sum += uint32(proto) + uint32(l4len)
		return sum
	}
	s, d := src.As16(), dst.As16()
	sum = csumAdd(sum, s[:])
	sum = csumAdd(sum, d[:])
	sum += uint32(l4len>>16) + uint32(l4len&0xffff) + uint32(proto)
	return sum
}

func buildPacket(s pktSpec) []byte {
	if s.srcMAC == nil {
		s.srcMAC = macClient
	}
	if s.dstMAC == nil {
		s.dstMAC = macNode
	}
	v4 := s.src.Addr().Is4()
	var l4 []byte
	switch s.proto {
	case ipProtoTCP:
		l4 = make([]byte, 20, 20+len(s.payload))
		binary.BigEndian.PutUint16(l4[0:], s.src.Port())
		binary.BigEndian.PutUint16(l4[2:], s.dst.Port())
		seq, ack := s.seq, s.ack
		if seq == 0 && ack == 0 {
			seq, ack = 1000, 2000
		}
		binary.BigEndian.PutUint32(l4[4:], seq)
		binary.BigEndian.PutUint32(l4[8:], ack)
		l4[12] = 5 << 4
		l4[13] = s.tcpFlags
		if l4[13] == 0 {
			l4[13] = 0x18
		}
		binary.BigEndian.PutUint16(l4[14:], 65535)
		l4 = append(l4, s.payload...)
	case ipProtoUDP:
		l4 = make([]byte, 8, 8+len(s.payload))
		binary.BigEndian.PutUint16(l4[0:], s.src.Port())
		binary.BigEndian.PutUint16(l4[2:], s.dst.Port())
		binary.BigEndian.PutUint16(l4[4:], uint16(8+len(s.payload)))
		l4 = append(l4, s.payload...)
	case ipProtoICMP, ipProtoICMPv6:
		l4 = make([]byte, 8, 8+len(s.payload))
		l4[0] = s.icmpType
		binary.BigEndian.PutUint16(l4[4:], 0x4242) // id
		binary.BigEndian.PutUint16(l4[6:], 7)      // seq
		l4 = append(l4, s.payload...)
	default:
		l4 = append([]byte(nil), s.payload...)
	}
	var csumOff = -1
	switch s.proto {
	case ipProtoTCP:
		csumOff = 16
	case ipProtoUDP:
		csumOff = 6
	case ipProtoICMP, ipProtoICMPv6:
		csumOff = 2
	}
	if csumOff >= 0 && !(s.proto == ipProtoUDP && v4 && s.udpNoCsum) {
		var sum uint32
		if s.proto != ipProtoICMP {
			sum = pseudoSum(s.src.Addr(), s.dst.Addr(), s.proto, len(l4))
		}
		c := ^csumFold(csumAdd(sum, l4))
		if c == 0 && s.proto == ipProtoUDP {
			c = 0xffff
		}
		binary.BigEndian.PutUint16(l4[csumOff:], c)
	}

	var b bytes.Buffer
	b.Write(s.dstMAC)
	b.Write(s.srcMAC)
	if v4 {
		b.Write([]byte{0x08, 0x00})
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
		binary.BigEndian.PutUint16(ip[4:], 0x1234)
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
		if s.fragment {
			binary.BigEndian.PutUint16(ip[6:], 0x2000) // MF
		}
		ip[8] = 64
		ip[9] = s.proto
		sa, da := s.src.Addr().As4(), s.dst.Addr().As4()
		copy(ip[12:], sa[:])
		copy(ip[16:], da[:])
		binary.BigEndian.PutUint16(ip[10:], ^csumFold(csumAdd(0, ip)))
		b.Write(ip)
	} else {
		b.Write([]byte{0x86, 0xdd})
		ip := make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(len(l4)))
		ip[6] = s.proto
		ip[7] = 64
		sa, da := s.src.Addr().As16(), s.dst.Addr().As16()
		copy(ip[8:], sa[:])
		copy(ip[24:], da[:])
		b.Write(ip)
	}
	b.Write(l4)
	return b.Bytes()
}

// decoded is a parsed packet with independently verified checksums.
type decoded struct {
	srcMAC, dstMAC net.HardwareAddr
	src, dst       netip.AddrPort
	proto          uint8
	ttl            uint8
	icmpType       uint8
	icmpID, icmpSq uint16
	l4Csum         uint16
	payload        []byte
}

func decodePacket(p []byte) (decoded, error) {
	var d decoded
	if len(p) < 14 {
		return d, fmt.Errorf("short ethernet frame: %d bytes", len(p))
	}
	d.dstMAC = net.HardwareAddr(p[0:6])
	d.srcMAC = net.HardwareAddr(p[6:12])
	var l4 []byte
	var src, dst netip.Addr
	switch et := binary.BigEndian.Uint16(p[12:]); et {
	case 0x0800:
		ip := p[14:]
		if len(ip) < 20 || ip[0]>>4 != 4 {
			return d, fmt.Errorf("bad ipv4 header")
		}
		ihl := int(ip[0]&0xf) * 4
		tot := int(binary.BigEndian.Uint16(ip[2:]))
		if tot > len(ip) || ihl > tot {
			return d, fmt.Errorf("bad ipv4 lengths: ihl %d total %d, have %d", ihl, tot, len(ip))
		}
		if csumFold(csumAdd(0, ip[:ihl])) != 0xffff {
			return d, fmt.Errorf("bad ipv4 header checksum %#04x", binary.BigEndian.Uint16(ip[10:]))
		}
		src = netip.AddrFrom4([4]byte(ip[12:16]))
		dst = netip.AddrFrom4([4]byte(ip[16:20]))
		d.proto = ip[9]
		d.ttl = ip[8]
		l4 = ip[ihl:tot]
	case 0x86dd:
		ip := p[14:]
		if len(ip) < 40 || ip[0]>>4 != 6 {
			return d, fmt.Errorf("bad ipv6 header")
		}
		pl := int(binary.BigEndian.Uint16(ip[4:]))
		if 40+pl > len(ip) {
			return d, fmt.Errorf("bad ipv6 payload length %d", pl)
		}
		src = netip.AddrFrom16([16]byte(ip[8:24]))
		dst = netip.AddrFrom16([16]byte(ip[24:40]))
		d.proto = ip[6]
		d.ttl = ip[7]
		l4 = ip[40 : 40+pl]
	default:
		return d, fmt.Errorf("ethertype %#04x", et)
	}
	var sport, dport uint16
	switch d.proto {
	case ipProtoTCP, ipProtoUDP:
		min := 8
		if d.proto == ipProtoTCP {
			min = 20
		}
		if len(l4) < min {
			return d, fmt.Errorf("short l4 header")
		}
		sport = binary.BigEndian.Uint16(l4[0:])
		dport = binary.BigEndian.Uint16(l4[2:])
		if d.proto == ipProtoTCP {
			d.l4Csum = binary.BigEndian.Uint16(l4[16:])
			d.payload = l4[int(l4[12]>>4)*4:]
		} else {
			d.l4Csum = binary.BigEndian.Uint16(l4[6:])
			d.payload = l4[8:]
		}
		if !(d.proto == ipProtoUDP && src.Is4() && d.l4Csum == 0) {
			if csumFold(csumAdd(pseudoSum(src, dst, d.proto, len(l4)), l4)) != 0xffff {
				return d, fmt.Errorf("bad %d checksum %#04x", d.proto, d.l4Csum)
			}
		}
	case ipProtoICMP, ipProtoICMPv6:
		if len(l4) < 8 {
			return d, fmt.Errorf("short icmp header")
		}
		var sum uint32
		if d.proto == ipProtoICMPv6 {
			sum = pseudoSum(src, dst, d.proto, len(l4))
		}
		if csumFold(csumAdd(sum, l4)) != 0xffff {
			return d, fmt.Errorf("bad icmp checksum")
		}
		d.icmpType = l4[0]
		d.icmpID = binary.BigEndian.Uint16(l4[4:])
		d.icmpSq = binary.BigEndian.Uint16(l4[6:])
		d.payload = l4[8:]
	}
	d.src = netip.AddrPortFrom(src, sport)
	d.dst = netip.AddrPortFrom(dst, dport)
	return d, nil
}

var (
	macClient = net.HardwareAddr{0x02, 0xc1, 0x1e, 0x00, 0x00, 0x01} // the router / client side
	macNode   = net.HardwareAddr{0x02, 0x0d, 0xe0, 0x00, 0x00, 0x01} // the node's uplink
	macPod    = net.HardwareAddr{0x02, 0x90, 0xd0, 0x00, 0x00, 0x05}
	macVeth   = net.HardwareAddr{0x02, 0x90, 0xd0, 0x00, 0x00, 0x06}
)
