package router

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"
)

// recordedFRR serves vtysh outputs recorded from the lab's FRR 8.4.4 (bgplb-lab up
// --export-pod-cidr, the suite's base configuration, one ETP=Cluster Service with a
// pod on each of the three nodes: VIP 203.0.113.0 announced by all three).
func recordedFRR(t *testing.T, ran *[]string) FRR {
	t.Helper()
	files := map[string]string{
		"show version": "frr-8.4.4-show-version.txt",
		"show bgp ipv4 unicast 203.0.113.0/32 json":  "frr-8.4.4-show-bgp-prefix.json",
		"show bgp ipv4 unicast 203.0.113.77/32 json": "frr-8.4.4-show-bgp-prefix-missing.json",
		"show ip route 203.0.113.0/32 json":          "frr-8.4.4-show-ip-route.json",
		"show ip route 203.0.113.77/32 json":         "frr-8.4.4-show-ip-route-missing.json",
		"show bgp neighbors json":                    "frr-8.4.4-show-bgp-neighbors.json",
	}
	return FRR{Run: func(_ context.Context, cmd string) ([]byte, error) {
		if ran != nil {
			*ran = append(*ran, cmd)
		}
		if cmd == "clear bgp *" {
			return nil, nil
		}
		f, ok := files[cmd]
		if !ok {
			return nil, fmt.Errorf("unexpected vtysh command %q", cmd)
		}
		b, err := os.ReadFile("testdata/" + f)
		if err != nil {
			t.Fatal(err)
		}
		return b, nil
	}}
}

func TestFRRName(t *testing.T) {
	if got, want := recordedFRR(t, nil).Name(context.Background()), "FRRouting 8.4.4 (vm) on Linux(6.18.44-fc-v1045)."; got != want {
		t.Errorf("Name = %q, want %q", got, want)
	}
	broken := FRR{Run: func(context.Context, string) ([]byte, error) { return nil, fmt.Errorf("exit status 1") }}
	if got := broken.Name(context.Background()); got != "FRR (version unknown)" {
		t.Errorf("Name of an unreachable FRR = %q", got)
	}
}

func TestFRRPaths(t *testing.T) {
	ctx := context.Background()
	f := recordedFRR(t, nil)
	paths, err := f.Paths(ctx, netip.MustParsePrefix("203.0.113.0/32"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := NextHops(paths), addrs("198.18.0.11", "198.18.0.12", "198.18.0.13"); !slices.Equal(got, want) {
		t.Errorf("next hops = %v, want %v", got, want)
	}
	best := 0
	for _, p := range paths {
		if p.PeerASPath != "64513" || p.Origin != "IGP" || p.Stale {
			t.Errorf("path %+v: want AS path 64513, origin IGP, not stale", p)
		}
		if p.Best {
			best++
			if p.NextHop != netip.MustParseAddr("198.18.0.11") {
				t.Errorf("best path via %s, FRR chose 198.18.0.11 (lowest router ID)", p.NextHop)
			}
		} else if !p.Multipath {
			t.Errorf("path via %s is neither best nor multipath", p.NextHop)
		}
		if p.LinkBandwidth != 0 || len(p.Communities) != 0 {
			t.Errorf("path via %s: no communities were sent, got %+v", p.NextHop, p)
		}
	}
	if best != 1 {
		t.Errorf("%d best paths, want 1", best)
	}

	missing, err := f.Paths(ctx, netip.MustParsePrefix("203.0.113.77/32"))
	if err != nil || len(missing) != 0 {
		t.Errorf("Paths of a prefix FRR does not hold = %v, %v; want none", missing, err)
	}
}

func TestFRRFIBNextHops(t *testing.T) {
	ctx := context.Background()
	f := recordedFRR(t, nil)
	got, err := f.FIBNextHops(ctx, netip.MustParsePrefix("203.0.113.0/32"))
	if err != nil {
		t.Fatal(err)
	}
	if want := addrs("198.18.0.11", "198.18.0.12", "198.18.0.13"); !slices.Equal(got, want) {
		t.Errorf("FIB next hops = %v, want %v", got, want)
	}
	none, err := f.FIBNextHops(ctx, netip.MustParsePrefix("203.0.113.77/32"))
	if err != nil || len(none) != 0 {
		t.Errorf("FIB next hops of a missing route = %v, %v; want none", none, err)
	}
}

func TestFRRNeighbors(t *testing.T) {
	nbs, err := recordedFRR(t, nil).Neighbors(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(nbs) != 3 {
		t.Fatalf("%d neighbours, want 3: %+v", len(nbs), nbs)
	}
	for i, nb := range nbs {
		want := netip.MustParseAddr(fmt.Sprintf("198.18.0.%d", 11+i))
		if nb.Address != want || nb.RemoteASN != 64513 || nb.State != "Established" || nb.ConnectionsDropped != 0 || nb.PrefixesReceived != 2 {
			t.Errorf("neighbour %d = %+v; want %s AS64513 Established, 0 dropped, 2 prefixes (VIP and pod CIDR)", i, nb, want)
		}
		if nb.EstablishedSince.Before(time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)) || nb.EstablishedSince.After(time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("neighbour %s established %v, recorded on 2026-12-03", nb.Address, nb.EstablishedSince)
		}
	}
}

func TestFRRClearSessions(t *testing.T) {
	var ran []string
	if err := recordedFRR(t, &ran).ClearSessions(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ran, []string{"clear bgp *"}) {
		t.Errorf("ran %q, want clear bgp *", ran)
	}
}

// TestFRRBrokenOutput: a vtysh that answers something other than JSON is an error
// naming the command, never an empty RIB.
func TestFRRBrokenOutput(t *testing.T) {
	f := FRR{Run: func(context.Context, string) ([]byte, error) { return []byte("% Unknown command: show bgp\n"), nil }}
	if _, err := f.Paths(context.Background(), netip.MustParsePrefix("203.0.113.0/32")); err == nil {
		t.Error("Paths accepted non-JSON output")
	}
	if _, err := f.Neighbors(context.Background()); err == nil {
		t.Error("Neighbors accepted non-JSON output")
	}
}
