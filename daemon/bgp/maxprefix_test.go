package bgp

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"github.com/osrg/gobgp/v3/pkg/server"
	"k8s.io/klog/v2/ktesting"

	"github.com/bgplb/bgplb/internal/poll"
)

const (
	leakPeerEnv  = "BGPLB_TEST_LEAK_PEER_PORT"
	leakPrefixes = 100_000
)

// TestLeakPeerProcess is not a test: run with $BGPLB_TEST_LEAK_PEER_PORT set (by
// TestMaxPrefixBoundsMemory) it is a GoBGP router in its own process that holds
// leakPrefixes /32s and sends them all to our speaker, like a router leaking a full
// table. Its own RIB must not count in the speaker's heap, hence the separate process.
func TestLeakPeerProcess(t *testing.T) {
	port := os.Getenv(leakPeerEnv)
	if port == "" {
		return // only a helper process; nothing to check in a normal run
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s := server.NewBgpServer()
	go s.Serve()
	if err := s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: routerASN, RouterId: "198.18.0.1", ListenPort: int32(p), ListenAddresses: []string{"127.0.0.1"},
	}}); err != nil {
		t.Fatal(err)
	}
	family := &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	attrs, _ := apiutil.MarshalPathAttributes([]bgp.PathAttributeInterface{
		bgp.NewPathAttributeOrigin(0), bgp.NewPathAttributeNextHop("127.0.0.1"),
	})
	base := netip.MustParseAddr("198.18.0.0")
	ip := base
	for i := 0; i < leakPrefixes; i++ {
		nlri, _ := apiutil.MarshalNLRI(bgp.NewIPAddrPrefix(32, ip.String()))
		if _, err := s.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL,
			Path: &api.Path{Family: family, Nlri: nlri, Pattrs: attrs}}); err != nil {
			t.Fatal(err)
		}
		ip = ip.Next()
	}
	if err := s.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: "127.0.0.1", PeerAsn: nodeASN},
		Transport: &api.Transport{PassiveMode: true, LocalAddress: "127.0.0.1"},
		AfiSafis:  []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: family, Enabled: true}}},
	}}); err != nil {
		t.Fatal(err)
	}
	fmt.Println("leak peer ready") // the parent waits for this line
	time.Sleep(5 * time.Minute)    // the parent kills us
}

// startLeakPeer runs TestLeakPeerProcess in a child process and waits until it holds
// its routes.
func startLeakPeer(t *testing.T) *testPeer {
	t.Helper()
	port := freePort(t, "127.0.0.1")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLeakPeerProcess$", "-test.v")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", leakPeerEnv, port))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // our own child; Wait reports the kill
		_ = cmd.Wait()
	})
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "leak peer ready") {
				ready <- nil
				for sc.Scan() { // drain
				}
				return
			}
		}
		ready <- fmt.Errorf("leak peer exited before it was ready: %v", sc.Err())
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("leak peer not ready after 3m")
	}
	return &testPeer{addr: netip.MustParseAddr("127.0.0.1"), port: port}
}

// heapInUse returns the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// rss returns this process's resident set size from /proc/self/status.
func rss(t *testing.T) uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb * 1024
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestMaxPrefixBoundsMemory: a real GoBGP peer in another process sends 100k /32s. With
// the default limit the session is reset with "maximum number of prefixes reached",
// PeerStatus.LastError says so with the limit, and the speaker's live heap and RSS grow
// by less than 10 MiB while the peer keeps reconnecting and resending.
func TestMaxPrefixBoundsMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 100k prefixes; not in -short")
	}
	ctx := context.Background()
	peer := startLeakPeer(t)
	// At -v=2 like bgplbd: the test's own log buffer of GoBGP's per-prefix debug lines
	// (V(5)) would otherwise be most of the heap measured.
	sp := NewSpeaker(ktesting.NewLogger(t, ktesting.NewConfig(ktesting.Verbosity(2))))
	if err := sp.Start(ctx, Global{ASN: nodeASN, RouterID: netip.MustParseAddr("198.18.0.11"), ListenPort: -1}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sp.Stop(context.Background(), false); err != nil {
			t.Errorf("stop speaker: %v", err)
		}
	})
	heap0, rss0 := heapInUse(), rss(t)
	cfg := peerConfig("leaky-router", peer, routerASN)
	if err := sp.SetPeers(ctx, []PeerConfig{cfg}); err != nil {
		t.Fatal(err)
	}
	var last PeerStatus
	poll.Eventually(t, waitFor, every, "session reset for max-prefix", func() string {
		st, err := sp.Peers(ctx)
		if err != nil || len(st) != 1 {
			return fmt.Sprintf("peers %v, %v", st, err)
		}
		last = st[0]
		if !strings.Contains(last.LastError, "max-prefix") {
			return fmt.Sprintf("state %s, last error %q", last.State, last.LastError)
		}
		return ""
	})
	t.Logf("PeerStatus: state %s, last error %q", last.State, last.LastError)
	if !IsMaxPrefixError(last.LastError) || !strings.Contains(last.LastError, strconv.Itoa(DefaultMaxPrefixes)) {
		t.Errorf("last error %q does not name the limit %d", last.LastError, DefaultMaxPrefixes)
	}
	// The peer reconnects and resends (connect-retry 1 s): watch a few rounds.
	var maxHeap, maxRSS uint64
	poll.Consistently(t, 15*time.Second, 500*time.Millisecond, "session down after max-prefix (GoBGP keeps it shut down)", func() string {
		maxHeap = max(maxHeap, heapInUse())
		maxRSS = max(maxRSS, rss(t))
		if st, err := sp.Peers(ctx); err == nil && len(st) == 1 && st[0].State == StateEstablished {
			return "session re-established"
		}
		return ""
	})
	var adjIn uint64
	if err := sp.s.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		for _, a := range p.AfiSafis {
			if a.State != nil {
				adjIn += a.State.Received
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	const limit = 10 << 20
	dHeap, dRSS := int64(maxHeap)-int64(heap0), int64(maxRSS)-int64(rss0)
	t.Logf("after %d prefixes offered: peak live heap +%.1f MiB, peak RSS +%.1f MiB, adj-rib-in now %d",
		leakPrefixes, float64(dHeap)/(1<<20), float64(dRSS)/(1<<20), adjIn)
	if dHeap > limit || dRSS > limit {
		t.Fatalf("memory grew by heap %d / RSS %d bytes, want < %d", dHeap, dRSS, limit)
	}

	// Raising the limit (a BGPPeer change) brings the session back, and shows what the
	// limit saves: GoBGP keeps every received route in the adj-RIB-in although the
	// import policy rejects it.
	cfg.MaxPrefixes = 1_000_000
	if err := sp.SetPeers(ctx, []PeerConfig{cfg}); err != nil {
		t.Fatal(err)
	}
	waitEstablished(t, sp, peer.addr)
	poll.Eventually(t, waitFor, every, "all prefixes received", func() string {
		var got uint64
		if err := sp.s.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
			for _, a := range p.AfiSafis {
				if a.State != nil {
					got += a.State.Received
				}
			}
		}); err != nil {
			return err.Error()
		}
		if got < leakPrefixes {
			return fmt.Sprintf("%d received", got)
		}
		return ""
	})
	t.Logf("without the limit the same peer costs +%.1f MiB of live heap (adj-RIB-in)",
		float64(int64(heapInUse())-int64(heap0))/(1<<20))
}
