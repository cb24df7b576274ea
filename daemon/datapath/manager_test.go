//go:build linux

package datapath

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/bgplb/bgplb/bpf"
	"github.com/bgplb/bgplb/daemon/eligibility"
)

type fakeMaps struct {
	services map[bpf.ServiceKey]bpf.ServiceEntry
	backends map[uint32]bpf.Backend
	vips     map[netip.Addr]bool
	ranges   map[uint32][]netip.Prefix
	ops      []string
}

func newFakeMaps() *fakeMaps {
	return &fakeMaps{services: map[bpf.ServiceKey]bpf.ServiceEntry{}, backends: map[uint32]bpf.Backend{},
		vips: map[netip.Addr]bool{}, ranges: map[uint32][]netip.Prefix{}}
}

func (f *fakeMaps) PutService(k bpf.ServiceKey, s bpf.Service, ids []uint32) error {
	for _, id := range ids {
		if _, ok := f.backends[id]; !ok {
			return fmt.Errorf("service %v names missing backend %d", k, id)
		}
	}
	f.services[k] = bpf.ServiceEntry{Key: k, Service: s, Backends: slices.Clone(ids)}
	f.ops = append(f.ops, "putsvc "+k.String())
	return nil
}
func (f *fakeMaps) DeleteService(k bpf.ServiceKey) error {
	delete(f.services, k)
	f.ops = append(f.ops, "delsvc "+k.String())
	return nil
}
func (f *fakeMaps) PutBackend(id uint32, b bpf.Backend) error {
	f.backends[id] = b
	f.ops = append(f.ops, fmt.Sprintf("putbe %d %v", id, b.Addr))
	return nil
}
func (f *fakeMaps) DeleteBackend(id uint32) error {
	for _, s := range f.services {
		if slices.Contains(s.Backends, id) {
			return fmt.Errorf("backend %d deleted while service %v names it", id, s.Key)
		}
	}
	delete(f.backends, id)
	f.ops = append(f.ops, fmt.Sprintf("delbe %d", id))
	return nil
}
func (f *fakeMaps) PutVIP(a netip.Addr) error {
	f.vips[a] = true
	f.ops = append(f.ops, "putvip "+a.String())
	return nil
}
func (f *fakeMaps) DeleteVIP(a netip.Addr) error {
	delete(f.vips, a)
	f.ops = append(f.ops, "delvip "+a.String())
	return nil
}
func (f *fakeMaps) SetSourceRanges(id uint32, p []netip.Prefix) error {
	f.ranges[id] = p
	f.ops = append(f.ops, fmt.Sprintf("setranges %d", id))
	return nil
}
func (f *fakeMaps) UpdateSourceRanges(id uint32, old, p []netip.Prefix) error {
	if !slices.Equal(f.ranges[id], old) {
		return fmt.Errorf("update ranges of %d from %v, but the map holds %v", id, old, f.ranges[id])
	}
	f.ranges[id] = p
	f.ops = append(f.ops, fmt.Sprintf("updateranges %d", id))
	return nil
}
func (f *fakeMaps) Services() ([]bpf.ServiceEntry, error) {
	var out []bpf.ServiceEntry
	for _, s := range f.services {
		out = append(out, s)
	}
	return out, nil
}
func (f *fakeMaps) Backends() ([]bpf.BackendEntry, error) {
	var out []bpf.BackendEntry
	for id, b := range f.backends {
		out = append(out, bpf.BackendEntry{ID: id, Backend: b})
	}
	return out, nil
}
func (f *fakeMaps) VIPs() ([]netip.Addr, error) {
	var out []netip.Addr
	for a := range f.vips {
		out = append(out, a)
	}
	return out, nil
}

var (
	vip   = netip.MustParseAddr("203.0.113.10")
	pod1  = netip.MustParseAddr("198.19.1.5")
	pod2  = netip.MustParseAddr("198.19.1.6")
	ports = []eligibility.Port{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 8080}}
	fe    = bpf.ServiceKey{VIP: vip, Port: 80, Proto: bpf.ProtoTCP}
)

func ifindexes(ip netip.Addr) (int, bool) {
	switch ip {
	case pod1:
		return 11, true
	case pod2:
		return 12, true
	}
	return 0, false
}

func want(newFlow, keep []netip.Addr, announced bool) *ServiceBackends {
	b := &ServiceBackends{VIPs: []netip.Addr{vip}, Local: true, Announced: announced,
		Ports: []ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}}}
	for _, ip := range newFlow {
		b.NewFlow = append(b.NewFlow, eligibility.LocalEndpoint{IP: ip, Ports: ports})
	}
	for _, ip := range keep {
		b.Keep = append(b.Keep, eligibility.LocalEndpoint{IP: ip, Ports: ports})
	}
	return b
}

func backendAddrs(f *fakeMaps, ids []uint32) []string {
	var out []string
	for _, id := range ids {
		out = append(out, f.backends[id].Addr.String())
	}
	slices.Sort(out)
	return out
}

func TestSetServiceProgramsAndCleansInOrder(t *testing.T) {
	ctx := context.Background()
	maps := newFakeMaps()
	m, err := New(maps, ifindexes)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetService(ctx, "default/web", want([]netip.Addr{pod1, pod2}, []netip.Addr{pod1, pod2}, true)); err != nil {
		t.Fatal(err)
	}
	e, ok := maps.services[fe]
	if !ok || !e.Service.Local {
		t.Fatalf("frontend %v not programmed: %+v", fe, maps.services)
	}
	if got := backendAddrs(maps, e.Backends); !reflect.DeepEqual(got, []string{"198.19.1.5:8080", "198.19.1.6:8080"}) {
		t.Fatalf("backends = %v", got)
	}
	if !maps.vips[vip] {
		t.Fatal("announced VIP not marked")
	}
	if i, j := slices.Index(maps.ops, "putsvc "+fe.String()), slices.Index(maps.ops, "putvip "+vip.String()); i < 0 || j < i {
		t.Fatalf("ops %q: want backends, then frontend, then VIP mark", maps.ops)
	}
	svcID := e.Service.ID

	// pod2 terminates: it keeps its flows (stays in lb_backends, flagged) but takes no new ones.
	maps.ops = nil
	if err := m.SetService(ctx, "default/web", want([]netip.Addr{pod1}, []netip.Addr{pod1, pod2}, true)); err != nil {
		t.Fatal(err)
	}
	e = maps.services[fe]
	if got := backendAddrs(maps, e.Backends); !reflect.DeepEqual(got, []string{"198.19.1.5:8080"}) {
		t.Fatalf("new-flow backends = %v", got)
	}
	if len(maps.backends) != 2 {
		t.Fatalf("lb_backends has %d entries, want 2 (the draining one stays)", len(maps.backends))
	}
	for _, b := range maps.backends {
		if b.Addr.Addr() == pod2 && !b.Terminating {
			t.Fatal("draining backend not flagged terminating")
		}
	}

	// Unchanged desired state writes nothing.
	maps.ops = nil
	if err := m.SetService(ctx, "default/web", want([]netip.Addr{pod1}, []netip.Addr{pod1, pod2}, true)); err != nil {
		t.Fatal(err)
	}
	if len(maps.ops) != 0 {
		t.Fatalf("idempotent SetService wrote %q", maps.ops)
	}

	// Restart: a new manager adopts ids; re-programming keeps the service id and backend ids.
	m2, err := New(maps, ifindexes)
	if err != nil {
		t.Fatal(err)
	}
	beforeBE := maps.services[fe].Backends
	if err := m2.SetService(ctx, "default/web", want([]netip.Addr{pod1}, []netip.Addr{pod1, pod2}, true)); err != nil {
		t.Fatal(err)
	}
	if got := maps.services[fe]; got.Service.ID != svcID || !slices.Equal(got.Backends, beforeBE) {
		t.Fatalf("after restart service id %d backends %v, want %d %v", got.Service.ID, got.Backends, svcID, beforeBE)
	}
	if err := m2.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	if len(maps.services) != 1 || len(maps.backends) != 2 || !maps.vips[vip] {
		t.Fatalf("prune removed claimed entries: %d services, %d backends, vip %v", len(maps.services), len(maps.backends), maps.vips[vip])
	}

	// Delete: VIP mark, frontend and backends all go.
	maps.ops = nil
	if err := m2.SetService(ctx, "default/web", nil); err != nil {
		t.Fatal(err)
	}
	if len(maps.services) != 0 || len(maps.backends) != 0 || len(maps.vips) != 0 {
		t.Fatalf("left behind: %+v %+v %+v", maps.services, maps.backends, maps.vips)
	}
	if maps.ops[0] != "delvip "+vip.String() {
		t.Fatalf("ops %q: want the VIP mark removed first", maps.ops)
	}
}

func TestPruneRemovesUnclaimed(t *testing.T) {
	ctx := context.Background()
	maps := newFakeMaps()
	m, _ := New(maps, ifindexes)
	if err := m.SetService(ctx, "default/old", want([]netip.Addr{pod1}, []netip.Addr{pod1}, true)); err != nil {
		t.Fatal(err)
	}
	// Daemon restarts; the Service was deleted meanwhile.
	m2, err := New(maps, ifindexes)
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	if len(maps.services) != 0 || len(maps.backends) != 0 || len(maps.vips) != 0 {
		t.Fatalf("prune left: %+v %+v %+v", maps.services, maps.backends, maps.vips)
	}
}

func TestSharedBackendsAndVIPsAreRefcounted(t *testing.T) {
	ctx := context.Background()
	maps := newFakeMaps()
	m, _ := New(maps, ifindexes)
	a := want([]netip.Addr{pod1}, []netip.Addr{pod1}, true)
	b := want([]netip.Addr{pod1}, []netip.Addr{pod1}, true)
	b.Ports = []ServicePort{{Name: "http", Protocol: corev1.ProtocolUDP, Port: 53}}
	b.NewFlow[0].Ports = []eligibility.Port{{Name: "http", Protocol: corev1.ProtocolUDP, Port: 5353}}
	b.Keep = b.NewFlow
	if err := m.SetService(ctx, "default/a", a); err != nil {
		t.Fatal(err)
	}
	if err := m.SetService(ctx, "default/b", b); err != nil {
		t.Fatal(err)
	}
	if len(maps.services) != 2 {
		t.Fatalf("%d frontends, want 2", len(maps.services))
	}
	if err := m.SetService(ctx, "default/a", nil); err != nil {
		t.Fatal(err)
	}
	if !maps.vips[vip] {
		t.Fatal("shared VIP mark removed while b still holds it")
	}
	if len(maps.services) != 1 || len(maps.backends) != 1 {
		t.Fatalf("after a left: %d frontends, %d backends", len(maps.services), len(maps.backends))
	}
}

// TestSourceRangesUpdatedIncrementally: a new frontend's ranges are replaced whole
// (SetSourceRanges: after a restart the map's content is not known), later changes
// touch only the entries that change (UpdateSourceRanges from what was written).
func TestSourceRangesUpdatedIncrementally(t *testing.T) {
	ctx := context.Background()
	maps := newFakeMaps()
	m, err := New(maps, ifindexes)
	if err != nil {
		t.Fatal(err)
	}
	withRanges := func(ranges ...string) *ServiceBackends {
		b := want([]netip.Addr{pod1}, []netip.Addr{pod1}, true)
		for _, r := range ranges {
			b.SourceRanges = append(b.SourceRanges, netip.MustParsePrefix(r))
		}
		return b
	}
	count := func(prefix string) int {
		n := 0
		for _, op := range maps.ops {
			if strings.HasPrefix(op, prefix) {
				n++
			}
		}
		return n
	}
	if err := m.SetService(ctx, "default/web", withRanges("198.51.100.0/24")); err != nil {
		t.Fatal(err)
	}
	if err := m.SetService(ctx, "default/web", withRanges("198.51.100.0/25", "203.0.113.0/24")); err != nil {
		t.Fatal(err) // the fake fails an update whose "old" is not what the map holds
	}
	if err := m.SetService(ctx, "default/web", withRanges("198.51.100.0/25", "203.0.113.0/24")); err != nil {
		t.Fatal(err)
	}
	if s, u := count("setranges"), count("updateranges"); s != 1 || u != 1 {
		t.Fatalf("setranges %d, updateranges %d; want 1 and 1 (ops %v)", s, u, maps.ops)
	}
}
