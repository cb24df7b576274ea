package bgp

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ttlProxy listens on 127.0.0.1 and relays every connection to the test peer p. Its
// sockets send with TTL ttl (the SYN-ACK included: Linux takes it from the listener), so
// the test peer behaves, towards our speaker, like a router sending with that TTL.
func ttlProxy(t *testing.T, p *testPeer, ttl int) *testPeer {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL, ttl) }); err != nil {
			return err
		}
		return serr
	}}
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return // closed by the cleanup
			}
			up, err := net.Dial("tcp", net.JoinHostPort(p.addr.String(), strconv.Itoa(int(p.port))))
			if err != nil {
				_ = c.Close()
				continue
			}
			go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
			go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
		}
	}()
	return &testPeer{s: p.s, addr: p.addr, port: uint16(l.Addr().(*net.TCPAddr).Port)}
}

// TestTTLSecurity: with TTLSecurityHops 1 the speaker accepts only packets with TTL 255
// (IP_MINTTL), so a peer sending with TTL 64 never gets a session (its SYN-ACK is
// dropped), and one sending with TTL 255, as GTSM routers do, does.
func TestTTLSecurity(t *testing.T) {
	t.Run("peer without GTSM is refused", func(t *testing.T) {
		sp := newSpeaker(t)
		p := ttlProxy(t, newTestPeer(t, routerASN, "198.18.0.1", "127.0.0.1", "127.0.0.1", nodeASN), 64)
		pc := peerConfig("router", p, routerASN)
		pc.TTLSecurityHops = 1
		if err := sp.SetPeers(context.Background(), []PeerConfig{pc}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			st, err := sp.Peers(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(st) == 1 && st[0].State == StateEstablished {
				t.Fatal("session Established with a peer sending TTL 1 under GTSM")
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	t.Run("peer with GTSM", func(t *testing.T) {
		sp := newSpeaker(t)
		p := ttlProxy(t, newTestPeer(t, routerASN, "198.18.0.1", "127.0.0.1", "127.0.0.1", nodeASN), 255)
		pc := peerConfig("router", p, routerASN)
		pc.TTLSecurityHops = 1
		if err := sp.SetPeers(context.Background(), []PeerConfig{pc}); err != nil {
			t.Fatal(err)
		}
		waitEstablished(t, sp, p.addr)
	})
}

func TestTTLSecurityValidation(t *testing.T) {
	pc := PeerConfig{Name: "r", Address: netip.MustParseAddr("198.18.0.1"), PeerASN: 64512, TTLSecurityHops: 1, EBGPMultihopTTL: 2}
	if err := pc.Validate(); err == nil || !strings.Contains(err.Error(), "mutually exclusive") {
		t.Fatalf("Validate(ttl security + multihop) = %v", err)
	}
	pc.EBGPMultihopTTL = 0
	pc.TTLSecurityHops = 255
	if err := pc.Validate(); err == nil {
		t.Fatal("Validate accepted 255 hops")
	}
	pc.TTLSecurityHops = 2
	if err := pc.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := (&GoBGPSpeaker{}).apiPeer(pc).TtlSecurity; got == nil || !got.Enabled || got.TtlMin != 254 {
		t.Fatalf("apiPeer TtlSecurity = %v, want enabled, ttl min 254", got)
	}
}
