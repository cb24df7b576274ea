package app

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/daemon/bgp"
	"github.com/bgplb/bgplb/daemon/bgp/bgptest"
)

// TestStateFileRoundTrip: what one daemon's speaker runs is saved (mode 0600) and a
// speaker started from the file runs the same peers, allowed prefixes and paths; after
// the catch-up pass, paths nobody re-announced are the untouched ones.
func TestStateFileRoundTrip(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	path := filepath.Join(t.TempDir(), "lib", "bgplbd-state.json")

	first := newRecordingSpeaker(bgptest.NewFake())
	g := bgp.Global{ASN: 64513, RouterID: netip.MustParseAddr("198.18.0.11"), ListenPort: -1}
	peers := []bgp.PeerConfig{{Name: "router", Address: netip.MustParseAddr("198.18.0.1"), PeerASN: 64512, Password: "s3cret",
		GracefulRestart: bgp.GracefulRestart{Enabled: true, RestartTime: 120 * time.Second}}}
	allowed := []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}
	paths := []bgp.Path{
		{Prefix: netip.MustParsePrefix("203.0.113.1/32"), Communities: []uint32{64512<<16 | 100}, LocalPref: ptr.To[uint32](200)},
		{Prefix: netip.MustParsePrefix("203.0.113.2/32"), PeerAttributes: map[netip.Addr]bgp.Attributes{
			netip.MustParseAddr("198.18.0.1"): {LinkBandwidth: ptr.To[float32](2)}}},
	}
	if err := first.Start(ctx, g); err != nil {
		t.Fatal(err)
	}
	if err := first.SetAllowedPrefixes(ctx, allowed); err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if err := first.Announce(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := first.SetPeers(ctx, peers); err != nil {
		t.Fatal(err)
	}
	go first.runSaver(ctx, path)
	var st persistedState
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if st, err = loadState(path); err == nil && len(st.Paths) == len(paths) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("state file not written: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode: %v, %v", fi.Mode(), err)
	}

	fake := bgptest.NewFake()
	second := newRecordingSpeaker(fake)
	if err := startFromState(ctx, second, st); err != nil {
		t.Fatal(err)
	}
	if got := fake.Announced(); !reflect.DeepEqual(got, paths) {
		t.Fatalf("announced from the state file: %+v, want %+v", got, paths)
	}
	if got := fake.ConfiguredPeers(); !reflect.DeepEqual(got, peers) {
		t.Fatalf("peers from the state file: %+v, want %+v", got, peers)
	}
	// The catch-up pass re-announces .1 only: .2 is what nobody claims.
	second.trackPrefixes()
	if err := second.Announce(ctx, paths[0]); err != nil {
		t.Fatal(err)
	}
	if got := second.untouched(); len(got) != 1 || got[0] != paths[1].Prefix {
		t.Fatalf("untouched = %v, want [%s]", got, paths[1].Prefix)
	}
}
