package bfd

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"k8s.io/klog/v2/ktesting"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// events collects the states OnChange reports.
type events chan Status

func (e events) wait(t *testing.T, want State, within time.Duration) Status {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case st := <-e:
			if st.State == want {
				return st
			}
		case <-deadline:
			t.Fatalf("no transition to %s within %s", want, within)
		}
	}
}

func newTestManager(t *testing.T, listen, peer int) (*Manager, events) {
	t.Helper()
	ev := make(events, 64)
	m := NewManager(ktesting.NewLogger(t, ktesting.NewConfig()), Options{ListenPort: listen, PeerPort: peer,
		OnChange: func(s Status) { ev <- s }})
	t.Cleanup(m.Close)
	return m, ev
}

// TestTwoManagers brings a session up between two managers over loopback, checks the
// negotiated timers, and takes it down from one side (AdminDown -> NeighborSignaledDown).
func TestTwoManagers(t *testing.T) {
	a, aev := newTestManager(t, 23784, 23785)
	b, bev := newTestManager(t, 23785, 23784)
	fast := Config{DesiredMinTx: 50 * time.Millisecond, RequiredMinRx: 50 * time.Millisecond, DetectMult: 3}
	if err := a.Set(loopback, loopback, fast); err != nil {
		t.Fatal(err)
	}
	if err := b.Set(loopback, netip.Addr{}, testCfg); err != nil {
		t.Fatal(err)
	}
	aev.wait(t, StateUp, 5*time.Second)
	bev.wait(t, StateUp, 5*time.Second)
	// After the Poll Sequences: A sends every max(50ms, B's 300ms RX) and B every
	// max(300, 50); A detects in 3 × max(50, 300).
	deadline := time.Now().Add(3 * time.Second)
	for {
		sa, _ := a.Status(loopback)
		sb, _ := b.Status(loopback)
		if sa.TxInterval == 300*time.Millisecond && sa.DetectTime == 900*time.Millisecond &&
			sb.TxInterval == 300*time.Millisecond && sb.DetectTime == 900*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timers not negotiated: a %+v b %+v", sa, sb)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A parameter change while Up keeps the session Up.
	if err := b.Set(loopback, netip.Addr{}, fast); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(3 * time.Second)
	for {
		sa, _ := a.Status(loopback)
		if sa.TxInterval == 50*time.Millisecond && sa.DetectTime == 150*time.Millisecond && sa.State == StateUp {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a did not follow b's new timers: %+v", sa)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Remove(loopback)
	st := aev.wait(t, StateDown, 2*time.Second)
	if st.Diag != DiagNeighborDown || st.RemoteState != StateAdminDown {
		t.Fatalf("a went down with diag %s remote %s, want NeighborSignaledSessionDown/AdminDown", st.Diag, st.RemoteState)
	}
	if st.Ups != 1 || st.Downs != 1 || st.PacketsIn == 0 || st.PacketsOut == 0 {
		t.Fatalf("counters %+v", st.Counters)
	}
	if len(a.Sessions()) != 1 || len(b.Sessions()) != 0 {
		t.Fatalf("sessions a %d b %d", len(a.Sessions()), len(b.Sessions()))
	}
}

// fakePeer sends hand-made Control packets to a manager's port with a chosen TTL.
type fakePeer struct {
	conn *net.UDPConn
	pc   *ipv4.Conn
}

func newFakePeer(t *testing.T, port int) *fakePeer {
	c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 23795},
		&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &fakePeer{conn: c, pc: ipv4.NewConn(c)}
}

func (f *fakePeer) send(t *testing.T, ttl int, p Packet) {
	t.Helper()
	if err := f.pc.SetTTL(ttl); err != nil {
		t.Fatal(err)
	}
	if _, err := f.conn.Write(p.Marshal()); err != nil {
		t.Fatal(err)
	}
}

// TestGTSMAndDetection: packets with TTL < 255 are ignored; a peer that goes silent is
// declared down after the detection time (ControlDetectionTimeExpired).
func TestGTSMAndDetection(t *testing.T) {
	m, ev := newTestManager(t, 23794, 23795)
	if err := m.Set(loopback, loopback, testCfg); err != nil {
		t.Fatal(err)
	}
	peer := newFakePeer(t, 23794)
	down := Packet{State: StateDown, DetectMult: 3, MyDiscriminator: 42, DesiredMinTx: 100 * time.Millisecond,
		RequiredMinRx: 100 * time.Millisecond}
	for range 5 {
		peer.send(t, 254, down)
	}
	time.Sleep(200 * time.Millisecond)
	if st, _ := m.Status(loopback); st.State != StateDown || st.PacketsIn != 0 {
		t.Fatalf("packets with TTL 254 were accepted: %+v", st)
	}
	peer.send(t, 255, down)
	ev.wait(t, StateInit, time.Second)
	// Up, addressed by our discriminator (6.3).
	up := Packet{State: StateUp, DetectMult: 3, MyDiscriminator: 42, DesiredMinTx: 100 * time.Millisecond,
		RequiredMinRx: 100 * time.Millisecond}
	m.mu.Lock()
	up.YourDiscriminator = m.sessions[loopback].s.disc
	m.mu.Unlock()
	peer.send(t, 255, up)
	ev.wait(t, StateUp, time.Second)
	start := time.Now()
	// Silence: detect time is 3 × max(300ms RX, 100ms TX) = 900 ms.
	st := ev.wait(t, StateDown, 3*time.Second)
	if el := time.Since(start); el < 800*time.Millisecond || el > 1500*time.Millisecond {
		t.Fatalf("declared down after %s, want about 900ms", el)
	}
	if st.Diag != DiagDetectExpired {
		t.Fatalf("diag %s, want ControlDetectionTimeExpired", st.Diag)
	}
	// A packet with a wrong Your Discriminator is not delivered.
	before, _ := m.Status(loopback)
	up.YourDiscriminator++
	peer.send(t, 255, up)
	time.Sleep(100 * time.Millisecond)
	if after, _ := m.Status(loopback); after.PacketsIn != before.PacketsIn {
		t.Fatalf("packet with an unknown discriminator was delivered")
	}
}
