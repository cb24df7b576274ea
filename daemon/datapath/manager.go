//go:build linux

package datapath

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/bgplb/bgplb/bpf"
	"github.com/bgplb/bgplb/daemon/eligibility"
	"github.com/bgplb/bgplb/daemon/metrics"
)

// Maps is the part of bpf.Maps the manager uses.
type Maps interface {
	PutService(k bpf.ServiceKey, s bpf.Service, backendIDs []uint32) error
	DeleteService(k bpf.ServiceKey) error
	PutBackend(id uint32, b bpf.Backend) error
	DeleteBackend(id uint32) error
	PutVIP(addr netip.Addr) error
	DeleteVIP(addr netip.Addr) error
	SetSourceRanges(svcID uint32, prefixes []netip.Prefix) error
	UpdateSourceRanges(svcID uint32, old, new []netip.Prefix) error
	Services() ([]bpf.ServiceEntry, error)
	Backends() ([]bpf.BackendEntry, error)
	VIPs() ([]netip.Addr, error)
}

// IfindexFunc returns the host-side veth ifindex of the local pod owning ip (from the CNI
// endpoint registry); false when the pod is not registered.
type IfindexFunc func(ip netip.Addr) (int, bool)

type backendKey struct {
	addr    netip.AddrPort
	ifindex int
}

type backendRef struct {
	id          uint32
	refs        int  // frontends' Services referencing it
	terminating bool // as last written
}

type frontend struct {
	key     bpf.ServiceKey
	id      uint32
	service bpf.Service
	ids     []uint32       // new-flow backend ids, sorted
	ranges  []netip.Prefix // source ranges written
}

// svcState is what the manager programmed for one Service.
type svcState struct {
	frontends []*frontend         // by key; a Service has a few (VIP × port), a slice is far smaller than a map
	backends  map[backendKey]bool // backends this Service references (nil: none yet)
	vips      []netip.Addr        // VIP marks this Service holds
}

// frontend returns the Service's frontend sk (nil: none).
func (s *svcState) frontend(sk bpf.ServiceKey) *frontend {
	for _, fe := range s.frontends {
		if fe.key == sk {
			return fe
		}
	}
	return nil
}

// Manager writes the datapath maps. Safe for concurrent use.
type Manager struct {
	maps    Maps
	ifindex IfindexFunc

	mu       sync.Mutex
	services map[string]*svcState       // Service key -> programmed state
	owners   map[bpf.ServiceKey]string  // frontend -> owning Service key
	adopted  map[bpf.ServiceKey]uint32  // frontends found at start, not yet claimed -> id
	backends map[backendKey]*backendRef // backend -> id and references
	vips     map[netip.Addr]int         // VIP -> Services holding its mark
	nextSvc  uint32
	nextBE   uint32
}

// New returns a manager over maps, adopting the frontends and backends already in them.
func New(maps Maps, ifindex IfindexFunc) (*Manager, error) {
	m := &Manager{maps: maps, ifindex: ifindex, services: map[string]*svcState{}, owners: map[bpf.ServiceKey]string{},
		adopted: map[bpf.ServiceKey]uint32{}, backends: map[backendKey]*backendRef{}, vips: map[netip.Addr]int{},
		nextSvc: 1, nextBE: 1}
	svcs, err := maps.Services()
	if err != nil {
		return nil, fmt.Errorf("read existing services: %w", err)
	}
	for _, e := range svcs {
		m.adopted[e.Key] = e.Service.ID
		m.nextSvc = max(m.nextSvc, e.Service.ID+1)
	}
	bes, err := maps.Backends()
	if err != nil {
		return nil, fmt.Errorf("read existing backends: %w", err)
	}
	for _, b := range bes {
		k := backendKey{addr: b.Backend.Addr, ifindex: b.Backend.Ifindex}
		m.backends[k] = &backendRef{id: b.ID, terminating: b.Backend.Terminating}
		m.nextBE = max(m.nextBE, b.ID+1)
	}
	return m, nil
}

// desiredFrontend is one frontend to program.
type desiredFrontend struct {
	service bpf.Service
	keys    []backendKey // new-flow backends
	ranges  []netip.Prefix
}

// SetService implements announce.Datapath.
func (m *Manager) SetService(ctx context.Context, key string, want *ServiceBackends) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.services[key]
	if cur == nil {
		cur = &svcState{} // backends made on first use: most Services have none on a node
	}
	fronts, backends, terminating, vips := m.compute(want)

	// 1. Backends this Service now needs (new ones get an id).
	for bk := range backends {
		ref := m.backends[bk]
		if ref == nil {
			ref = &backendRef{id: m.nextBE}
			if err := m.maps.PutBackend(ref.id, bpf.Backend{Addr: bk.addr, Ifindex: bk.ifindex, Terminating: terminating[bk]}); err != nil {
				return err
			}
			m.nextBE++
			ref.terminating = terminating[bk]
			m.backends[bk] = ref
		} else if ref.terminating != terminating[bk] {
			if err := m.maps.PutBackend(ref.id, bpf.Backend{Addr: bk.addr, Ifindex: bk.ifindex, Terminating: terminating[bk]}); err != nil {
				return err
			}
			ref.terminating = terminating[bk]
		}
		if !cur.backends[bk] {
			if cur.backends == nil {
				cur.backends = map[backendKey]bool{}
			}
			cur.backends[bk] = true
			ref.refs++
		}
	}
	m.services[key] = cur

	// 2. Frontends.
	for sk, df := range fronts {
		if owner, ok := m.owners[sk]; ok && owner != key {
			klog.FromContext(ctx).Info("frontend already programmed by another service, skipping", "frontend", sk, "owner", owner, "service", key)
			continue
		}
		ids := make([]uint32, 0, len(df.keys))
		for _, bk := range df.keys {
			ids = append(ids, m.backends[bk].id)
		}
		slices.Sort(ids)
		fe := cur.frontend(sk)
		isNew := fe == nil
		if isNew {
			id, ok := m.adopted[sk]
			if !ok {
				id = m.nextSvc
				m.nextSvc++
			}
			fe = &frontend{key: sk, id: id}
		}
		svc := df.service
		svc.ID = fe.id
		if isNew {
			// What the map holds for an adopted id is not known: replace it all.
			if err := m.maps.SetSourceRanges(fe.id, df.ranges); err != nil {
				return fmt.Errorf("set source ranges of %v: %w", sk, err)
			}
			fe.ranges = df.ranges
		} else if !slices.Equal(fe.ranges, df.ranges) {
			// Only the entries that change (SetSourceRanges walks every service's).
			if err := m.maps.UpdateSourceRanges(fe.id, fe.ranges, df.ranges); err != nil {
				return fmt.Errorf("update source ranges of %v: %w", sk, err)
			}
			fe.ranges = df.ranges
		}
		if isNew || fe.service != svc || !slices.Equal(fe.ids, ids) {
			if err := m.maps.PutService(sk, svc, ids); err != nil {
				return err
			}
		}
		fe.service, fe.ids = svc, ids
		if isNew {
			cur.frontends = append(cur.frontends, fe)
		}
		m.owners[sk] = key
		delete(m.adopted, sk)
	}

	// 3. VIP marks (ICMP echo; before the VIP is announced).
	for _, vip := range vips {
		if slices.Contains(cur.vips, vip) {
			continue
		}
		if m.vips[vip] == 0 {
			if err := m.maps.PutVIP(vip); err != nil {
				return err
			}
		}
		m.vips[vip]++
		cur.vips = append(cur.vips, vip)
	}

	// 4. Removals: VIP marks, frontends, then unreferenced backends.
	for _, vip := range slices.Clone(cur.vips) {
		if slices.Contains(vips, vip) {
			continue
		}
		if m.vips[vip] == 1 {
			if err := m.maps.DeleteVIP(vip); err != nil {
				return err
			}
		}
		m.vips[vip]--
		if m.vips[vip] <= 0 {
			delete(m.vips, vip)
		}
		cur.vips = slices.DeleteFunc(cur.vips, func(v netip.Addr) bool { return v == vip })
	}
	for _, fe := range slices.Clone(cur.frontends) {
		if _, ok := fronts[fe.key]; ok {
			continue
		}
		if err := m.maps.DeleteService(fe.key); err != nil {
			return err
		}
		cur.frontends = slices.DeleteFunc(cur.frontends, func(f *frontend) bool { return f == fe })
		delete(m.owners, fe.key)
	}
	for bk := range cur.backends {
		if backends[bk] {
			continue
		}
		ref := m.backends[bk]
		if ref.refs == 1 {
			if err := m.maps.DeleteBackend(ref.id); err != nil {
				return err
			}
			delete(m.backends, bk)
		} else {
			ref.refs--
		}
		delete(cur.backends, bk)
	}
	if want == nil {
		delete(m.services, key)
	}
	metrics.DatapathServices.Set(float64(len(m.owners)))
	return nil
}

// compute turns the desired state into frontends, the backends they reference (new-flow and
// keep-only), which backends are terminating, and the VIPs to mark.
func (m *Manager) compute(want *ServiceBackends) (map[bpf.ServiceKey]desiredFrontend, map[backendKey]bool, map[backendKey]bool, []netip.Addr) {
	fronts := map[bpf.ServiceKey]desiredFrontend{}
	backends := map[backendKey]bool{}
	terminating := map[backendKey]bool{}
	if want == nil {
		return fronts, backends, terminating, nil
	}
	newFlow := map[netip.Addr]bool{}
	for _, e := range want.NewFlow {
		newFlow[e.IP] = true
	}
	for _, vip := range want.VIPs {
		for _, sp := range want.Ports {
			proto, ok := protoOf(sp.Protocol)
			if !ok {
				continue // SCTP is not served by the datapath
			}
			sk := bpf.ServiceKey{VIP: vip, Port: uint16(sp.Port), Proto: proto}
			df := desiredFrontend{service: bpf.Service{Local: want.Local, SourceRanges: want.RestrictSources || len(want.SourceRanges) > 0}}
			if len(want.SourceRanges) > 0 {
				for _, r := range want.SourceRanges {
					if r.Addr().Is4() == vip.Is4() {
						df.ranges = append(df.ranges, r)
					}
				}
			}
			for _, e := range want.Keep {
				if e.IP.Is4() != vip.Is4() {
					continue
				}
				target, ok := targetPort(e, sp)
				if !ok {
					continue
				}
				ifindex, ok := m.ifindex(e.IP)
				if !ok {
					continue
				}
				bk := backendKey{addr: netip.AddrPortFrom(e.IP, target), ifindex: ifindex}
				backends[bk] = true
				if newFlow[e.IP] {
					df.keys = append(df.keys, bk)
				} else {
					terminating[bk] = true
				}
			}
			fronts[sk] = df
		}
	}
	var vips []netip.Addr
	if want.Announced {
		vips = slices.Clone(want.VIPs)
	}
	return fronts, backends, terminating, vips
}

// targetPort finds the endpoint port serving service port sp (matched by name and protocol).
func targetPort(e eligibility.LocalEndpoint, sp ServicePort) (uint16, bool) {
	for _, p := range e.Ports {
		if p.Name == sp.Name && p.Protocol == sp.Protocol && p.Port > 0 {
			return uint16(p.Port), true
		}
	}
	return 0, false
}

func protoOf(p corev1.Protocol) (bpf.Proto, bool) {
	switch p {
	case corev1.ProtocolTCP, "":
		return bpf.ProtoTCP, true
	case corev1.ProtocolUDP:
		return bpf.ProtoUDP, true
	}
	return 0, false
}

// Prune removes what no Service claimed since New: adopted frontends, unreferenced
// backends and VIP marks. Call it once after the first full sync of every Service.
func (m *Manager) Prune(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	logger := klog.FromContext(ctx)
	var errs []error
	vips, err := m.maps.VIPs()
	if err != nil {
		errs = append(errs, err)
	}
	for _, vip := range vips {
		if m.vips[vip] == 0 {
			errs = append(errs, m.maps.DeleteVIP(vip))
		}
	}
	for sk := range m.adopted {
		if err := m.maps.DeleteService(sk); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(m.adopted, sk)
	}
	pruned := 0
	for bk, ref := range m.backends {
		if ref.refs > 0 {
			continue
		}
		if err := m.maps.DeleteBackend(ref.id); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(m.backends, bk)
		pruned++
	}
	logger.V(2).Info("datapath pruned stale entries", "backends", pruned)
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("prune datapath: %w", err)
		}
	}
	return nil
}
