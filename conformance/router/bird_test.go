package router

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// recorded serves birdc and ip outputs recorded from the lab's BIRD 2.0.12 (bgplb-lab
// up --router bird, then the demo: one VIP announced by three nodes).
func recorded(t *testing.T) BIRD {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	files := map[string]string{
		"show status":                    "bird-2.0.12-show-status.txt",
		"show route 203.0.113.1/32 all":  "bird-2.0.12-show-route-all.txt",
		"show protocols all":             "bird-2.0.12-show-protocols-all.txt",
		"show route 203.0.113.99/32 all": "",
	}
	var restarted []string
	return BIRD{
		Run: func(_ context.Context, cmd string) ([]byte, error) {
			if name, ok := strings.CutPrefix(cmd, "restart "); ok {
				restarted = append(restarted, name)
				return []byte("BIRD 2.0.12 ready.\n" + name + ": restarted\n"), nil
			}
			f, ok := files[cmd]
			if !ok {
				return nil, fmt.Errorf("unexpected birdc command %q", cmd)
			}
			if f == "" {
				return []byte("BIRD 2.0.12 ready.\nNetwork not found\n"), fmt.Errorf("exit status 1")
			}
			return read(f), nil
		},
		IP: func(_ context.Context, args ...string) ([]byte, error) {
			if strings.Join(args, " ") == "-4 -j route show exact 203.0.113.1/32" {
				return read("iproute-multipath.json"), nil
			}
			return []byte("[]\n"), nil
		},
	}
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestBIRDRecorded(t *testing.T) {
	ctx := context.Background()
	b := recorded(t)
	if got := b.Name(ctx); got != "BIRD 2.0.12" {
		t.Errorf("Name = %q", got)
	}
	vip := netip.MustParsePrefix("203.0.113.1/32")
	paths, err := b.Paths(ctx, vip)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := NextHops(paths), addrs("198.18.0.11", "198.18.0.12", "198.18.0.13"); !slices.Equal(got, want) {
		t.Errorf("path next hops = %v, want %v", got, want)
	}
	best := 0
	for _, p := range paths {
		if p.Best {
			best++
		}
		if p.PeerASPath != "64513" || p.Origin != "IGP" || p.LocalPref != 100 {
			t.Errorf("path %+v: want AS path 64513, origin IGP, local pref 100", p)
		}
		// 1207182336 is the bits of the float32 125000 (bytes/s) bgplbd sent.
		if p.LinkBandwidth != 125000 {
			t.Errorf("path via %s: link bandwidth %v, want 125000", p.NextHop, p.LinkBandwidth)
		}
	}
	if best != 1 {
		t.Errorf("%d best paths, want 1", best)
	}
	if p, err := b.Paths(ctx, netip.MustParsePrefix("203.0.113.99/32")); err != nil || len(p) != 0 {
		t.Errorf("absent prefix: paths %v, err %v", p, err)
	}
	fib, err := b.FIBNextHops(ctx, vip)
	if err != nil {
		t.Fatal(err)
	}
	if want := addrs("198.18.0.11", "198.18.0.12", "198.18.0.13"); !slices.Equal(fib, want) {
		t.Errorf("FIB next hops = %v, want %v", fib, want)
	}
	if fib, err := b.FIBNextHops(ctx, netip.MustParsePrefix("203.0.113.99/32")); err != nil || len(fib) != 0 {
		t.Errorf("absent route: FIB %v, err %v", fib, err)
	}
	nbs, err := b.Neighbors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range nbs {
		got = append(got, fmt.Sprintf("%s AS%d %s %d", n.Address, n.RemoteASN, n.State, n.PrefixesReceived))
		if want := time.Date(2026, 12, 3, 7, 7, 10, 0, time.Local); n.EstablishedSince.Before(want) || n.EstablishedSince.After(want.Add(2*time.Second)) {
			t.Errorf("%s established since %v, want %v..+2s", n.Address, n.EstablishedSince, want)
		}
	}
	want := []string{"198.18.0.11 AS64513 Established 1", "198.18.0.12 AS64513 Established 1", "198.18.0.13 AS64513 Established 1"}
	if !slices.Equal(got, want) {
		t.Errorf("neighbours = %q, want %q (the listening range template is not a neighbour)", got, want)
	}
	if err := b.ClearSessions(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestBIRDParsers(t *testing.T) {
	if got := birdTuples("(64512,100) (64512,200)", ":"); !slices.Equal(got, []string{"64512:100", "64512:200"}) {
		t.Errorf("communities = %q", got)
	}
	if got := birdTuples("(64512, 1, 2)", ":"); !slices.Equal(got, []string{"64512:1:2"}) {
		t.Errorf("large communities = %q", got)
	}
	if got := birdLinkBandwidth("(rt, 64512, 1) (unknown 0x4004, 64513, 1207182336)"); got != 125000 {
		t.Errorf("link bandwidth = %v", got)
	}
	today := time.Date(2026, 12, 3, 12, 0, 0, 0, time.Local)
	if got := birdSince([]string{"07:07:10.123", "Established"}, today); got.Hour() != 7 || got.Day() != 3 {
		t.Errorf("since (time of day) = %v", got)
	}
	if hops, err := parseIPRouteNextHops([]byte(`[{"dst":"203.0.113.2","gateway":"198.18.0.12","dev":"br-fabric"}]`)); err != nil || !slices.Equal(hops, addrs("198.18.0.12")) {
		t.Errorf("single-path route: %v %v", hops, err)
	}
	if _, err := parseIPRouteNextHops([]byte("not json")); err == nil {
		t.Error("garbage from ip accepted")
	}
}
