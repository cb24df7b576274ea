//go:build linux

package datapath

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/bgplb/bgplb/bpf"
)

// TestManagerOnRealMaps drives the manager against the real pinned maps in a private
// bpffs directory: program, read back, "restart" (reopen + adopt), prune, delete.
func TestManagerOnRealMaps(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (bpf maps in bpffs)")
	}
	pinDir := filepath.Join("/sys/fs/bpf", fmt.Sprintf("bgplb-datapath-test-%d", os.Getpid()))
	t.Cleanup(func() { _ = os.RemoveAll(pinDir) }) // unpins everything the test created
	ctx := context.Background()

	maps, err := OpenMaps(pinDir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(maps, ifindexes)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetService(ctx, "default/web", want([]netip.Addr{pod1}, []netip.Addr{pod1, pod2}, true)); err != nil {
		t.Fatal(err)
	}
	svcs, err := maps.Services()
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 1 || svcs[0].Key != fe || !svcs[0].Service.Local || len(svcs[0].Backends) != 1 {
		t.Fatalf("services in the map = %+v", svcs)
	}
	bes, err := maps.Backends()
	if err != nil {
		t.Fatal(err)
	}
	if len(bes) != 2 {
		t.Fatalf("backends in the map = %+v, want the new-flow one and the draining one", bes)
	}
	byID := map[uint32]bpf.Backend{}
	for _, b := range bes {
		byID[b.ID] = b.Backend
	}
	if b := byID[svcs[0].Backends[0]]; b.Addr != netip.AddrPortFrom(pod1, 8080) || b.Ifindex != 11 {
		t.Fatalf("new-flow backend = %+v", b)
	}
	vips, err := maps.VIPs()
	if err != nil || !slices.Contains(vips, vip) {
		t.Fatalf("VIPs = %v, %v", vips, err)
	}
	if err := maps.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart: reopen the pinned maps; ids are adopted, nothing is rewritten needlessly.
	maps2, err := OpenMaps(pinDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = maps2.Close() })
	m2, err := New(maps2, ifindexes)
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.SetService(ctx, "default/web", want([]netip.Addr{pod1}, []netip.Addr{pod1, pod2}, true)); err != nil {
		t.Fatal(err)
	}
	if err := m2.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	svcs2, err := maps2.Services()
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs2) != 1 || svcs2[0].Service.ID != svcs[0].Service.ID || !slices.Equal(svcs2[0].Backends, svcs[0].Backends) {
		t.Fatalf("after restart: %+v, before: %+v", svcs2, svcs)
	}

	if err := m2.SetService(ctx, "default/web", nil); err != nil {
		t.Fatal(err)
	}
	svcs2, _ = maps2.Services()
	bes, _ = maps2.Backends()
	vips, _ = maps2.VIPs()
	if len(svcs2) != 0 || len(bes) != 0 || len(vips) != 0 {
		t.Fatalf("left in the maps: %d services, %d backends, %d vips", len(svcs2), len(bes), len(vips))
	}
}

// TestSourceRangesOnRealMaps: a Service's loadBalancerSourceRanges are written when its
// frontend is new, then changed entry by entry (UpdateSourceRanges), never touching
// another Service's ranges, and removed with the frontend.
func TestSourceRangesOnRealMaps(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (bpf maps in bpffs)")
	}
	pinDir := filepath.Join("/sys/fs/bpf", fmt.Sprintf("bgplb-datapath-ranges-%d", os.Getpid()))
	t.Cleanup(func() { _ = os.RemoveAll(pinDir) }) // unpins everything the test created
	ctx := context.Background()
	maps, err := OpenMaps(pinDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = maps.Close() })
	m, err := New(maps, ifindexes)
	if err != nil {
		t.Fatal(err)
	}
	p := netip.MustParsePrefix
	withRanges := func(vip netip.Addr, ranges ...netip.Prefix) *ServiceBackends {
		b := want([]netip.Addr{pod1}, []netip.Addr{pod1}, true)
		b.VIPs = []netip.Addr{vip}
		b.SourceRanges = ranges
		return b
	}
	other := netip.MustParseAddr("203.0.113.77")
	if err := m.SetService(ctx, "default/other", withRanges(other, p("198.51.100.0/28"))); err != nil {
		t.Fatal(err)
	}
	// The IPv6 range does not apply to an IPv4 VIP.
	if err := m.SetService(ctx, "default/web", withRanges(vip, p("198.51.100.0/24"), p("198.18.0.0/24"), p("2001:db8:c::/64"))); err != nil {
		t.Fatal(err)
	}
	rangesOf := func(v netip.Addr) []netip.Prefix {
		t.Helper()
		svcs, err := maps.Services()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range svcs {
			if s.Key.VIP == v {
				if !s.Service.SourceRanges {
					t.Fatalf("service %v does not enforce its ranges", v)
				}
				r, err := maps.SourceRanges(s.Service.ID)
				if err != nil {
					t.Fatal(err)
				}
				return r
			}
		}
		t.Fatalf("no service for %v", v)
		return nil
	}
	check := func(v netip.Addr, want ...netip.Prefix) {
		t.Helper()
		if got := rangesOf(v); !slices.Equal(got, want) {
			t.Fatalf("ranges of %v = %v, want %v", v, got, want)
		}
	}
	check(vip, p("198.18.0.0/24"), p("198.51.100.0/24"))
	if err := m.SetService(ctx, "default/web", withRanges(vip, p("198.51.100.0/24"), p("203.0.113.0/24"))); err != nil {
		t.Fatal(err)
	}
	check(vip, p("198.51.100.0/24"), p("203.0.113.0/24"))
	check(other, p("198.51.100.0/28"))
	if err := m.SetService(ctx, "default/web", nil); err != nil {
		t.Fatal(err)
	}
	check(other, p("198.51.100.0/28"))
	all, err := maps.SourceRanges(0)
	if err != nil || len(all) != 0 {
		t.Fatalf("ranges of id 0: %v %v", all, err)
	}
}
