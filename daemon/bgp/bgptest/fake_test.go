package bgptest

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/bgplb/bgplb/daemon/bgp"
)

func TestFake(t *testing.T) {
	ctx := context.Background()
	f := NewFake()
	vip := netip.MustParsePrefix("203.0.113.5/32")
	if err := f.Announce(ctx, bgp.Path{Prefix: vip}); !errors.Is(err, bgp.ErrNotStarted) {
		t.Fatalf("announce before start: %v", err)
	}
	if err := f.Start(ctx, bgp.Global{ASN: 64513}); err != nil {
		t.Fatal(err)
	}
	if err := f.Announce(ctx, bgp.Path{Prefix: vip}); !errors.Is(err, bgp.ErrPrefixNotAllowed) {
		t.Fatalf("announce outside allowed set: %v", err)
	}
	if err := f.SetAllowedPrefixes(ctx, []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}); err != nil {
		t.Fatal(err)
	}
	if err := f.Announce(ctx, bgp.Path{Prefix: vip}); err != nil {
		t.Fatal(err)
	}
	if a := f.Announced(); len(a) != 1 || a[0].Prefix != vip {
		t.Fatalf("announced = %v", a)
	}
	peer := netip.MustParseAddr("198.18.0.1")
	if err := f.SetPeers(ctx, []bgp.PeerConfig{{Name: "r", Address: peer, PeerASN: 64512}}); err != nil {
		t.Fatal(err)
	}
	if err := f.SetPeers(ctx, []bgp.PeerConfig{{Name: "bad", Address: peer}}); err == nil {
		t.Fatal("invalid peer accepted")
	}
	if f.EstablishedPeers() != 0 {
		t.Fatal("established before SetStatus")
	}
	f.SetStatus(peer, bgp.PeerStatus{State: bgp.StateEstablished})
	select {
	case <-f.Changes():
	default:
		t.Fatal("no change signalled")
	}
	st, _ := f.Peers(ctx)
	if f.EstablishedPeers() != 1 || len(st) != 1 || st[0].LocalASN != 64513 || st[0].Name != "r" {
		t.Fatalf("peers = %+v", st)
	}
	// Shrinking the allowed set withdraws, like the real speaker.
	if err := f.SetAllowedPrefixes(ctx, []netip.Prefix{netip.MustParsePrefix("203.0.113.128/25")}); err != nil {
		t.Fatal(err)
	}
	if a := f.Announced(); len(a) != 0 {
		t.Fatalf("announced after shrink = %v", a)
	}
	f.Err = errors.New("injected")
	if err := f.Withdraw(ctx, vip); err == nil || err.Error() != "injected" {
		t.Fatalf("injected error not returned: %v", err)
	}
	if err := f.Stop(ctx, true); err != nil {
		t.Fatal(err)
	}
	if stopped, graceful := f.Stopped(); !stopped || !graceful {
		t.Fatal("graceful stop not recorded")
	}
	want := []string{"Announce 203.0.113.5/32", "Announce 203.0.113.5/32", "Announce 203.0.113.5/32", "SetPeers 1", "SetPeers 1", "Withdraw 203.0.113.5/32"}
	if got := f.Calls(); !slices.Equal(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
}
