package bfd

import (
	"testing"
	"time"
)

var testCfg = Config{DesiredMinTx: 300 * time.Millisecond, RequiredMinRx: 300 * time.Millisecond, DetectMult: 3}

// TestTransitions is the state diagram of RFC 5880 section 6.2 as specified by the
// reception rules of section 6.8.6: every local state against every received state.
func TestTransitions(t *testing.T) {
	for _, tc := range []struct {
		local, remote State
		want          State
		wantDiag      Diag
	}{
		{StateDown, StateAdminDown, StateDown, DiagNone},
		{StateDown, StateDown, StateInit, DiagNone},
		{StateDown, StateInit, StateUp, DiagNone},
		{StateDown, StateUp, StateDown, DiagNone},
		{StateInit, StateAdminDown, StateDown, DiagNeighborDown},
		{StateInit, StateDown, StateInit, DiagNone},
		{StateInit, StateInit, StateUp, DiagNone},
		{StateInit, StateUp, StateUp, DiagNone},
		{StateUp, StateAdminDown, StateDown, DiagNeighborDown},
		{StateUp, StateDown, StateDown, DiagNeighborDown},
		{StateUp, StateInit, StateUp, DiagNone},
		{StateUp, StateUp, StateUp, DiagNone},
		{StateAdminDown, StateDown, StateAdminDown, DiagAdminDown},
		{StateAdminDown, StateInit, StateAdminDown, DiagAdminDown},
		{StateAdminDown, StateUp, StateAdminDown, DiagAdminDown},
		{StateAdminDown, StateAdminDown, StateAdminDown, DiagAdminDown},
	} {
		t.Run(tc.local.String()+"+"+tc.remote.String(), func(t *testing.T) {
			m := newMachine(testCfg, 1)
			m.state = tc.local
			if tc.local == StateAdminDown {
				m.diag = DiagAdminDown
			}
			_, changed := m.recv(Packet{State: tc.remote, DetectMult: 3, MyDiscriminator: 2, YourDiscriminator: 1,
				DesiredMinTx: time.Second, RequiredMinRx: time.Second})
			if m.state != tc.want || m.diag != tc.wantDiag {
				t.Fatalf("state %s diag %s, want %s diag %s", m.state, m.diag, tc.want, tc.wantDiag)
			}
			if changed != (tc.local != tc.want) {
				t.Fatalf("changed = %v", changed)
			}
			if m.remoteDisc != 2 {
				t.Fatalf("remote discriminator %d, want 2", m.remoteDisc)
			}
		})
	}
}

func TestExpire(t *testing.T) {
	for _, tc := range []struct {
		local, want State
		diag        Diag
	}{
		{StateDown, StateDown, DiagNone},
		{StateInit, StateDown, DiagDetectExpired},
		{StateUp, StateDown, DiagDetectExpired},
		{StateAdminDown, StateAdminDown, DiagNone},
	} {
		m := newMachine(testCfg, 1)
		m.state, m.remoteDisc, m.remoteMult = tc.local, 5, 3
		m.expire()
		if m.state != tc.want || m.diag != tc.diag || m.remoteDisc != 0 || m.detectTime() != 0 {
			t.Errorf("%s: state %s diag %s remoteDisc %d detect %s", tc.local, m.state, m.diag, m.remoteDisc, m.detectTime())
		}
	}
}

// peerPacket is what a peer in state s with the given intervals sends.
func peerPacket(s State, tx, rx time.Duration, poll, final bool) Packet {
	return Packet{State: s, DetectMult: 3, MyDiscriminator: 2, YourDiscriminator: 1, DesiredMinTx: tx,
		RequiredMinRx: rx, Poll: poll, Final: final}
}

// TestTimersAndPoll walks a session up and through a parameter change: 1 s while not
// Up, the configured 300 ms after a Poll Sequence, intervals negotiated with the peer's
// (section 6.8.2, 6.8.3, 6.8.4).
func TestTimersAndPoll(t *testing.T) {
	m := newMachine(testCfg, 1)
	if p := m.packet(false); p.DesiredMinTx != time.Second || p.Poll || p.YourDiscriminator != 0 {
		t.Fatalf("Down packet %+v: want 1 s desired TX, no poll, your discriminator 0", p)
	}
	if m.txInterval() != time.Second {
		t.Fatalf("Down tx interval %s, want 1s", m.txInterval())
	}
	m.recv(peerPacket(StateDown, time.Second, 300*time.Millisecond, false, false))
	m.recv(peerPacket(StateInit, time.Second, 300*time.Millisecond, false, false))
	if m.state != StateUp {
		t.Fatalf("state %s, want Up", m.state)
	}
	// Up: the faster TX applies at once (a decrease), and the change is polled.
	p := m.packet(false)
	if !p.Poll || p.DesiredMinTx != 300*time.Millisecond {
		t.Fatalf("Up packet %+v: want Poll with 300ms", p)
	}
	if m.txInterval() != 300*time.Millisecond {
		t.Fatalf("tx interval %s, want 300ms", m.txInterval())
	}
	// Detection time: remote multiplier × max(our RX, its TX) = 3 × 1 s until it speeds up.
	if m.detectTime() != 3*time.Second {
		t.Fatalf("detect %s, want 3s", m.detectTime())
	}
	final, _ := m.recv(peerPacket(StateUp, 300*time.Millisecond, 300*time.Millisecond, false, true))
	if final || m.polling || m.packet(false).Poll {
		t.Fatalf("poll not terminated by Final")
	}
	if m.detectTime() != 900*time.Millisecond {
		t.Fatalf("detect %s, want 900ms", m.detectTime())
	}
	// A Poll from the peer is answered with a Final and no Poll.
	if final, _ := m.recv(peerPacket(StateUp, 500*time.Millisecond, 500*time.Millisecond, true, false)); !final {
		t.Fatal("Poll not answered")
	}
	if fp := m.packet(true); !fp.Final || fp.Poll {
		t.Fatalf("final packet %+v", fp)
	}
	if m.txInterval() != 500*time.Millisecond || m.detectTime() != 1500*time.Millisecond {
		t.Fatalf("after peer slowed down: tx %s detect %s, want 500ms 1.5s", m.txInterval(), m.detectTime())
	}
	// We slow down: the slower TX and the shorter... here: a longer RX applies at once,
	// a slower TX only after the Final.
	m.recv(peerPacket(StateUp, 100*time.Millisecond, 100*time.Millisecond, false, false))
	m.setConfig(Config{DesiredMinTx: time.Second, RequiredMinRx: 50 * time.Millisecond, DetectMult: 3})
	if !m.polling || m.packet(false).DesiredMinTx != time.Second || m.packet(false).RequiredMinRx != 50*time.Millisecond {
		t.Fatalf("setConfig while Up did not poll the new values: %+v", m.packet(false))
	}
	if m.txInterval() != 300*time.Millisecond {
		t.Fatalf("slower TX applied before the Final: %s", m.txInterval())
	}
	if m.detectTime() != 900*time.Millisecond {
		t.Fatalf("shorter RX applied before the Final: detect %s", m.detectTime())
	}
	m.recv(peerPacket(StateUp, 100*time.Millisecond, 100*time.Millisecond, false, true))
	if m.txInterval() != time.Second || m.detectTime() != 300*time.Millisecond {
		t.Fatalf("after Final: tx %s detect %s, want 1s 300ms", m.txInterval(), m.detectTime())
	}
	// Down again: back to 1 s, no poll.
	m.recv(peerPacket(StateDown, time.Second, time.Second, false, false))
	if m.state != StateDown || m.txInterval() != time.Second || m.polling {
		t.Fatalf("after Down: state %s tx %s polling %v", m.state, m.txInterval(), m.polling)
	}
	if m.counters.Ups != 1 || m.counters.Downs != 1 {
		t.Fatalf("counters %+v, want 1 up 1 down", m.counters)
	}
}

func TestNoTransmitWhenRemoteMinRxZero(t *testing.T) {
	m := newMachine(testCfg, 1)
	if !m.mayTransmit() {
		t.Fatal("new session may not transmit")
	}
	m.recv(peerPacket(StateDown, time.Second, 0, false, false))
	if m.mayTransmit() {
		t.Fatal("transmits although the peer asked for no packets")
	}
}

func TestJitter(t *testing.T) {
	for range 1000 {
		if j := jitter(time.Second, 3); j < 750*time.Millisecond || j > time.Second {
			t.Fatalf("jitter %s outside 75-100%%", j)
		}
		if j := jitter(time.Second, 1); j < 750*time.Millisecond || j > 900*time.Millisecond {
			t.Fatalf("jitter with multiplier 1: %s outside 75-90%%", j)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := testCfg.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Config{
		{DesiredMinTx: time.Millisecond, RequiredMinRx: time.Second, DetectMult: 3},
		{DesiredMinTx: time.Second, RequiredMinRx: 2 * time.Minute, DetectMult: 3},
		{DesiredMinTx: time.Second, RequiredMinRx: time.Second},
	} {
		if c.Validate() == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
