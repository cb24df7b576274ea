//go:build linux

package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/cilium/ebpf"
)

// Proto is an IP protocol number as used in the maps.
type Proto uint8

// Protocols a service can have.
const (
	ProtoTCP Proto = 6
	ProtoUDP Proto = 17
)

func (p Proto) String() string {
	switch p {
	case ProtoTCP:
		return "TCP"
	case ProtoUDP:
		return "UDP"
	}
	return fmt.Sprintf("proto(%d)", uint8(p))
}

// ServiceKey identifies a service frontend: lb_services key (VIP, port, protocol).
type ServiceKey struct {
	VIP   netip.Addr // IPv4 or IPv6; stored IPv4-mapped
	Port  uint16     // service port, host order
	Proto Proto
}

func (k ServiceKey) String() string {
	return fmt.Sprintf("%s/%s", netip.AddrPortFrom(k.VIP, k.Port), k.Proto)
}

// Service is the lb_services value.
type Service struct {
	// ID identifies the frontend in lb_maglev, lb_src_ranges and lb_svc_stats.
	// Non-zero, unique per ServiceKey, and not reused while flows may name it.
	ID uint32
	// Local is externalTrafficPolicy Local: with no backend for new flows the
	// packet is dropped (and counted) instead of handed to the kernel.
	Local bool
	// SourceRanges enforces the ranges set with SetSourceRanges(ID, ...):
	// clients outside them are dropped. An empty set then drops everyone.
	SourceRanges bool
}

// Backend is the lb_backends value: a local pod endpoint.
type Backend struct {
	Addr    netip.AddrPort // pod IP (same family as the VIPs it serves) and target port
	Ifindex int            // ifindex of the pod's host-side veth
	// Terminating marks a terminating-but-serving endpoint. Which backends take
	// new flows is the set given to PutService; additionally a TCP SYN that
	// reuses the 5-tuple of a flow tracked to a terminating backend is
	// treated as a new flow (so client port reuse never lands on a pod that
	// is shutting down while a new-flow backend exists).
	Terminating bool
}

// Stats are packet/byte counters summed over CPUs (request direction).
type Stats struct {
	Packets uint64
	Bytes   uint64
}

// DropReason indexes lb_drops (enum lb_drop_reason in lb.h).
type DropReason uint32

// Drop reasons counted by the uplink program.
const (
	DropNoLocalBackend DropReason = 1 // Local policy, no eligible local backend
	DropSourceRange    DropReason = 2 // client outside loadBalancerSourceRanges
	DropNoBackend      DropReason = 3 // Maglev slot names a missing or wrong-family backend
	DropFragment       DropReason = 4 // IP fragment to a VIP
	DropMalformed      DropReason = 5 // truncated L4 header to a VIP, or a failed rewrite
	DropCTFull         DropReason = 6 // conntrack/reverse-NAT entry could not be written
	DropNoService      DropReason = 7 // to a VIP in lb_vips, but no service on that port/protocol
	dropMax            DropReason = 8 // LB_DROP_MAX
)

var dropNames = map[DropReason]string{
	DropNoLocalBackend: "noLocalBackend",
	DropSourceRange:    "sourceRange",
	DropNoBackend:      "noBackend",
	DropFragment:       "fragment",
	DropMalformed:      "malformed",
	DropCTFull:         "conntrackFull",
	DropNoService:      "noService",
}

func (r DropReason) String() string {
	if s, ok := dropNames[r]; ok {
		return s
	}
	return fmt.Sprintf("reason%d", uint32(r))
}

// Maps gives typed access to the pinned datapath maps. It is the only
// supported way to write them. Methods are safe for concurrent use by
// several goroutines (each call is independent bpf(2) syscalls), but
// writers of one service should be serialised by the caller.
type Maps struct {
	m lbMaps
}

// OpenMaps opens the maps pinned in pinDir, creating (and pinning) the ones
// that do not exist yet. It loads no program.
func OpenMaps(pinDir string) (*Maps, error) {
	var m Maps
	if err := loadObjects(pinDir, &m.m); err != nil {
		return nil, err
	}
	return &m, nil
}

// Close releases the map file descriptors (the pinned maps stay).
func (m *Maps) Close() error {
	return m.m.Close()
}

func htons(p uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], p)
	return binary.NativeEndian.Uint16(b[:])
}

func ntohs(v uint16) uint16 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], v)
	return binary.BigEndian.Uint16(b[:])
}

func addrFrom16(b [16]byte) netip.Addr {
	return netip.AddrFrom16(b).Unmap()
}

func (k ServiceKey) raw() (lbLbServiceKey, error) {
	if !k.VIP.IsValid() {
		return lbLbServiceKey{}, fmt.Errorf("service key %v: invalid VIP", k)
	}
	if k.Proto != ProtoTCP && k.Proto != ProtoUDP {
		return lbLbServiceKey{}, fmt.Errorf("service key %v: protocol must be TCP or UDP", k)
	}
	return lbLbServiceKey{Vip: k.VIP.Unmap().As16(), Port: htons(k.Port), Proto: uint8(k.Proto)}, nil
}

func ignoreNotExist(err error) error {
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil
	}
	return err
}

// PutService creates or updates a frontend and the set of backends (ids in
// lb_backends, written before with PutBackend) that take its NEW flows; flows
// already tracked keep their backend while it exists in lb_backends. The
// Maglev table is written before the service entry publishes a non-zero
// count, so the program never sees a count without a table. An empty set
// means "no local backend" (Local: drop; Cluster: to the kernel). Every id
// must name a backend of the VIP's address family already in lb_backends.
func (m *Maps) PutService(k ServiceKey, s Service, backendIDs []uint32) error {
	rk, err := k.raw()
	if err != nil {
		return err
	}
	if s.ID == 0 {
		return fmt.Errorf("put service %v: id 0 is reserved", k)
	}
	for _, id := range backendIDs {
		var b lbLbBackend
		if err := m.m.LbBackends.Lookup(id, &b); err != nil {
			return fmt.Errorf("put service %v: backend %d: %w", k, id, err)
		}
		if addrFrom16(b.Addr).Is4() != k.VIP.Unmap().Is4() {
			return fmt.Errorf("put service %v: backend %d (%v) is of another address family", k, id, addrFrom16(b.Addr))
		}
	}
	table := MaglevTable(backendIDs)
	count := uint32(0)
	if table != nil {
		var mt lbLbMaglevTable
		copy(mt.BackendIds[:], table)
		if err := m.m.LbMaglev.Put(s.ID, &mt); err != nil {
			return fmt.Errorf("put maglev table of service %v (id %d): %w", k, s.ID, err)
		}
		count = uint32(len(slices.Compact(slices.Sorted(slices.Values(backendIDs)))))
	}
	v := lbLbService{Id: s.ID, Count: count}
	if s.Local {
		v.Flags |= 1 // LB_SVC_F_LOCAL
	}
	if s.SourceRanges {
		v.Flags |= svcFlagSourceRanges
	}
	if err := m.m.LbServices.Put(&rk, &v); err != nil {
		return fmt.Errorf("put service %v: %w", k, err)
	}
	if table == nil {
		if err := ignoreNotExist(m.m.LbMaglev.Delete(s.ID)); err != nil {
			return fmt.Errorf("delete maglev table of service %v (id %d): %w", k, s.ID, err)
		}
	}
	return nil
}

// LookupService returns the frontend and its new-flow backend ids.
func (m *Maps) LookupService(k ServiceKey) (Service, []uint32, bool, error) {
	rk, err := k.raw()
	if err != nil {
		return Service{}, nil, false, err
	}
	var v lbLbService
	if err := m.m.LbServices.Lookup(&rk, &v); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return Service{}, nil, false, nil
		}
		return Service{}, nil, false, fmt.Errorf("lookup service %v: %w", k, err)
	}
	ids, err := m.maglevBackends(v.Id, v.Count)
	if err != nil {
		return Service{}, nil, false, err
	}
	return fromRawService(v), ids, true, nil
}

func fromRawService(v lbLbService) Service {
	return Service{ID: v.Id, Local: v.Flags&1 != 0, SourceRanges: v.Flags&2 != 0}
}

func (m *Maps) maglevBackends(id, count uint32) ([]uint32, error) {
	if count == 0 {
		return nil, nil
	}
	var mt lbLbMaglevTable
	if err := m.m.LbMaglev.Lookup(id, &mt); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("lookup maglev table %d: %w", id, err)
	}
	ids := slices.Clone(mt.BackendIds[:])
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// svcFlagSourceRanges is LB_SVC_F_SOURCE_RANGES (lb.h).
const svcFlagSourceRanges = 2

// DeleteService removes a frontend, then its Maglev table, source ranges and
// counters. Deleting a missing service is not an error.
func (m *Maps) DeleteService(k ServiceKey) error {
	rk, err := k.raw()
	if err != nil {
		return err
	}
	var v lbLbService
	if err := m.m.LbServices.Lookup(&rk, &v); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		return fmt.Errorf("lookup service %v: %w", k, err)
	}
	if err := ignoreNotExist(m.m.LbServices.Delete(&rk)); err != nil {
		return fmt.Errorf("delete service %v: %w", k, err)
	}
	if err := ignoreNotExist(m.m.LbMaglev.Delete(v.Id)); err != nil {
		return fmt.Errorf("delete maglev table of service %v (id %d): %w", k, v.Id, err)
	}
	if err := m.SetSourceRanges(v.Id, nil); err != nil {
		return err
	}
	if err := ignoreNotExist(m.m.LbSvcStats.Delete(v.Id)); err != nil {
		return fmt.Errorf("delete counters of service %v (id %d): %w", k, v.Id, err)
	}
	return nil
}

// PutBackend creates or updates a backend. Write backends before the
// services that name them.
func (m *Maps) PutBackend(id uint32, b Backend) error {
	if id == 0 {
		return fmt.Errorf("put backend %v: id 0 is reserved", b.Addr)
	}
	if !b.Addr.IsValid() || b.Ifindex <= 0 {
		return fmt.Errorf("put backend %d: need an address and a host ifindex, got %v ifindex %d", id, b.Addr, b.Ifindex)
	}
	v := lbLbBackend{Addr: b.Addr.Addr().Unmap().As16(), Port: htons(b.Addr.Port()), Ifindex: uint32(b.Ifindex)}
	if b.Terminating {
		v.Flags |= 1 // LB_BE_F_TERMINATING
	}
	if err := m.m.LbBackends.Put(id, &v); err != nil {
		return fmt.Errorf("put backend %d (%v): %w", id, b.Addr, err)
	}
	return nil
}

// DeleteBackend removes a backend and its counters. Tracked flows to it stop
// matching (their next packet picks a new backend). Remove it from every
// service's set (PutService) first. Deleting a missing backend is not an error.
func (m *Maps) DeleteBackend(id uint32) error {
	if err := ignoreNotExist(m.m.LbBackends.Delete(id)); err != nil {
		return fmt.Errorf("delete backend %d: %w", id, err)
	}
	if err := ignoreNotExist(m.m.LbBeStats.Delete(id)); err != nil {
		return fmt.Errorf("delete counters of backend %d: %w", id, err)
	}
	return nil
}

func sumStats(per []lbLbStats) Stats {
	var s Stats
	for _, p := range per {
		s.Packets += p.Packets
		s.Bytes += p.Bytes
	}
	return s
}

func (m *Maps) stats(mp *ebpf.Map, id uint32) (Stats, error) {
	var per []lbLbStats
	if err := mp.Lookup(id, &per); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return Stats{}, nil
		}
		return Stats{}, fmt.Errorf("lookup counters %d: %w", id, err)
	}
	return sumStats(per), nil
}

// ServiceStats returns the request counters of service id.
func (m *Maps) ServiceStats(id uint32) (Stats, error) { return m.stats(m.m.LbSvcStats, id) }

// BackendStats returns the request counters of backend id.
func (m *Maps) BackendStats(id uint32) (Stats, error) { return m.stats(m.m.LbBeStats, id) }

// ServiceEntry is one frontend as listed by Services.
type ServiceEntry struct {
	Key      ServiceKey
	Service  Service
	Backends []uint32 // ids taking new flows (from the Maglev table), sorted
	Stats    Stats
}

// Services lists all frontends with their new-flow backends and counters,
// sorted by key (for bgplbctl lb list and for the daemon's resync).
func (m *Maps) Services() ([]ServiceEntry, error) {
	var (
		k      lbLbServiceKey
		v      lbLbService
		out    []ServiceEntry
		counts []uint32
	)
	it := m.m.LbServices.Iterate()
	for it.Next(&k, &v) {
		out = append(out, ServiceEntry{
			Key:     ServiceKey{VIP: addrFrom16(k.Vip), Port: ntohs(k.Port), Proto: Proto(k.Proto)},
			Service: fromRawService(v),
		})
		counts = append(counts, v.Count)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("iterate services: %w", err)
	}
	for i := range out {
		e := &out[i]
		ids, err := m.maglevBackends(e.Service.ID, counts[i])
		if err != nil {
			return nil, err
		}
		e.Backends = ids
		if e.Stats, err = m.ServiceStats(e.Service.ID); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(out, func(a, b ServiceEntry) int {
		if c := a.Key.VIP.Compare(b.Key.VIP); c != 0 {
			return c
		}
		if a.Key.Port != b.Key.Port {
			return int(a.Key.Port) - int(b.Key.Port)
		}
		return int(a.Key.Proto) - int(b.Key.Proto)
	})
	return out, nil
}

// BackendEntry is one backend as listed by Backends.
type BackendEntry struct {
	ID      uint32
	Backend Backend
	Stats   Stats
}

// Backends lists all backends with their counters, sorted by id.
func (m *Maps) Backends() ([]BackendEntry, error) {
	var (
		k   uint32
		v   lbLbBackend
		out []BackendEntry
	)
	it := m.m.LbBackends.Iterate()
	for it.Next(&k, &v) {
		out = append(out, BackendEntry{ID: k, Backend: Backend{
			Addr:        netip.AddrPortFrom(addrFrom16(v.Addr), ntohs(v.Port)),
			Ifindex:     int(v.Ifindex),
			Terminating: v.Flags&1 != 0,
		}})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("iterate backends: %w", err)
	}
	for i := range out {
		var err error
		if out[i].Stats, err = m.BackendStats(out[i].ID); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(out, func(a, b BackendEntry) int { return int(a.ID) - int(b.ID) })
	return out, nil
}

// Drops returns the drop counters (summed over CPUs) by reason; zero
// counters are omitted.
func (m *Maps) Drops() (map[DropReason]uint64, error) {
	out := map[DropReason]uint64{}
	for r := DropReason(1); r < dropMax; r++ {
		var per []uint64
		if err := m.m.LbDrops.Lookup(uint32(r), &per); err != nil {
			return nil, fmt.Errorf("lookup drop counter %v: %w", r, err)
		}
		var n uint64
		for _, c := range per {
			n += c
		}
		if n > 0 {
			out[r] = n
		}
	}
	return out, nil
}

// Flow is a conntrack entry: a client flow to a frontend pinned to a backend.
type Flow struct {
	Client    netip.AddrPort
	Frontend  netip.AddrPort
	Proto     Proto
	ServiceID uint32
	BackendID uint32
	Created   time.Duration // CLOCK_MONOTONIC (since boot) when first seen
}

// Flows lists up to limit conntrack entries (all when limit <= 0).
func (m *Maps) Flows(limit int) ([]Flow, error) {
	var (
		k   lbLbCtKey
		v   lbLbCtEntry
		out []Flow
	)
	it := m.m.LbCt.Iterate()
	for it.Next(&k, &v) {
		out = append(out, Flow{
			Client:    netip.AddrPortFrom(addrFrom16(k.Saddr), ntohs(k.Sport)),
			Frontend:  netip.AddrPortFrom(addrFrom16(k.Daddr), ntohs(k.Dport)),
			Proto:     Proto(k.Proto),
			ServiceID: v.SvcId,
			BackendID: v.BackendId,
			Created:   time.Duration(v.CreatedNs),
		})
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("iterate conntrack: %w", err)
	}
	return out, nil
}
