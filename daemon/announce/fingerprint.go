package announce

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"

	corev1 "k8s.io/api/core/v1"

	"github.com/bgplb/bgplb/daemon/datapath"
	"github.com/bgplb/bgplb/daemon/eligibility"
)

// fingerprintSeed is fixed for the process: fingerprints are only compared in memory.
var fingerprintSeed = maphash.MakeSeed()

// fingerprint returns a 64-bit hash of b's content, 0 for nil and never 0 otherwise.
//
// The announcer keeps, per Service, only the fingerprint of the datapath state it last
// programmed and calls Datapath.SetService when the fingerprint changes: the datapath
// keeps what it needs itself, and a second full copy of every Service's endpoints cost
// ~6 MB at 10k Services. Two different states with one fingerprint (probability 2^-64 per
// comparison) would leave the datapath at the old state until the next change.
func fingerprint(b *datapath.ServiceBackends) uint64 {
	if b == nil {
		return 0
	}
	var e fpEncoder
	e.count(len(b.VIPs))
	for _, ip := range b.VIPs {
		e.addr(ip)
	}
	e.count(len(b.Ports))
	for _, p := range b.Ports {
		e.port(p.Name, p.Protocol, p.Port)
	}
	e.flag(b.Local)
	e.count(len(b.SourceRanges))
	for _, r := range b.SourceRanges {
		e.addr(r.Addr())
		e.count(r.Bits())
	}
	e.flag(b.RestrictSources)
	e.flag(b.Announced)
	e.endpoints(b.NewFlow)
	e.endpoints(b.Keep)
	h := maphash.Bytes(fingerprintSeed, e.buf)
	if h == 0 {
		h = 1
	}
	return h
}

// fpEncoder appends an unambiguous encoding (lengths before variable parts).
type fpEncoder struct{ buf []byte }

func (e *fpEncoder) count(n int) { e.buf = binary.AppendVarint(e.buf, int64(n)) }

func (e *fpEncoder) str(s string) {
	e.count(len(s))
	e.buf = append(e.buf, s...)
}

func (e *fpEncoder) flag(v bool) {
	if v {
		e.buf = append(e.buf, 1)
	} else {
		e.buf = append(e.buf, 0)
	}
}

func (e *fpEncoder) port(name string, proto corev1.Protocol, port int32) {
	e.str(name)
	e.str(string(proto))
	e.count(int(port))
}

func (e *fpEncoder) addr(ip netip.Addr) {
	b, _ := ip.MarshalBinary() // never fails; the zero Addr is empty
	e.count(len(b))
	e.buf = append(e.buf, b...)
}

func (e *fpEncoder) endpoints(eps []eligibility.LocalEndpoint) {
	e.count(len(eps))
	for i := range eps {
		ep := &eps[i]
		e.addr(ep.IP)
		e.count(len(ep.Ports))
		for _, p := range ep.Ports {
			e.port(p.Name, p.Protocol, p.Port)
		}
		e.str(ep.NodeName)
		e.str(ep.PodNamespace)
		e.str(ep.PodName)
		e.flag(ep.Ready)
		e.flag(ep.Serving)
		e.flag(ep.Terminating)
	}
}
