package bgp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/bgplb/bgplb/daemon/bfd"

	"github.com/bgplb/bgplb/internal/poll"
)

// bfdResponder is a minimal BFD peer on 127.0.0.1: it answers each packet of our
// speaker (Down -> Init, Init/Up -> Up) until it is silenced, like a router whose link
// to the node was cut.
type bfdResponder struct {
	conn   *net.UDPConn
	silent atomic.Bool
}

func newBFDResponder(t *testing.T, listen, send int) *bfdResponder {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: listen})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := ipv4.NewConn(c).SetTTL(255); err != nil {
		t.Fatal(err)
	}
	r := &bfdResponder{conn: c}
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: send}
	go func() {
		buf := make([]byte, 64)
		for {
			n, _, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			p, err := bfd.Unmarshal(buf[:n])
			if err != nil || r.silent.Load() {
				continue
			}
			reply := bfd.Packet{State: bfd.StateInit, DetectMult: 3, MyDiscriminator: 77,
				YourDiscriminator: p.MyDiscriminator, DesiredMinTx: 50 * time.Millisecond,
				RequiredMinRx: 50 * time.Millisecond, Final: p.Poll}
			if p.State == bfd.StateInit || p.State == bfd.StateUp {
				reply.State = bfd.StateUp
			}
			_, _ = c.WriteToUDP(reply.Marshal(), to) // a lost reply is what BFD tolerates
		}
	}()
	return r
}

// TestBFDDownDisablesPeer: a BFD session that goes down shuts the BGP session down at
// once (the peer withdraws our routes), and the BGP session comes back with BFD.
func TestBFDDownDisablesPeer(t *testing.T) {
	ctx := context.Background()
	peer := newTestPeer(t, routerASN, "198.18.0.1", "127.0.0.1", "127.0.0.1", nodeASN)
	sp := newSpeaker(t)
	sp.bfdOpts = bfd.Options{ListenPort: 24784, PeerPort: 24785}
	resp := newBFDResponder(t, 24785, 24784)
	pc := peerConfig("router", peer, routerASN)
	pc.HoldTime, pc.Keepalive = 30*time.Second, 10*time.Second // the hold timer cannot be what ends it
	pc.BFD = &bfd.Config{DesiredMinTx: 50 * time.Millisecond, RequiredMinRx: 50 * time.Millisecond, DetectMult: 3}
	if err := sp.SetPeers(ctx, []PeerConfig{pc}); err != nil {
		t.Fatal(err)
	}
	waitEstablished(t, sp, peer.addr)
	bfdState := func(want string) func() string {
		return func() string {
			st, err := sp.Peers(ctx)
			if err != nil {
				return err.Error()
			}
			if len(st) != 1 || st[0].BFD == nil || st[0].BFD.State != want {
				return fmt.Sprintf("peers %+v", st)
			}
			return ""
		}
	}
	poll.Eventually(t, waitFor, every, "BFD Up", bfdState("Up"))
	vip := netip.MustParsePrefix("203.0.113.7/32")
	if err := sp.Announce(ctx, Path{Prefix: vip}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, waitFor, every, "route at the peer", func() string {
		if _, ok := peer.lookup(t, vip); !ok {
			return "not there"
		}
		return ""
	})
	resp.silent.Store(true)
	start := time.Now()
	poll.Eventually(t, waitFor, every, "route withdrawn at the peer", func() string {
		if _, ok := peer.lookup(t, vip); ok {
			return "still there"
		}
		return ""
	})
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("route withdrawn after %s; BFD detects in 150ms", el)
	}
	st, err := sp.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st[0].State == StateEstablished || !strings.Contains(st[0].LastError, "BFD session down (ControlDetectionTimeExpired)") {
		t.Fatalf("after BFD down: state %s, last error %q", st[0].State, st[0].LastError)
	}
	if st[0].BFD.Downs != 1 {
		t.Fatalf("BFD counters %+v, want 1 down", st[0].BFD.Counters)
	}
	resp.silent.Store(false)
	waitEstablished(t, sp, peer.addr)
	poll.Eventually(t, waitFor, every, "route back at the peer", func() string {
		if _, ok := peer.lookup(t, vip); !ok {
			return "not there"
		}
		return ""
	})
	// Turning BFD off does not reset the BGP session.
	est := sp.EstablishedPeers()
	pc.BFD = nil
	if err := sp.SetPeers(ctx, []PeerConfig{pc}); err != nil {
		t.Fatal(err)
	}
	st, err = sp.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if est != 1 || st[0].State != StateEstablished || st[0].BFD != nil {
		t.Fatalf("after turning BFD off: %+v", st[0])
	}
}
