package bfd

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Config is the local side of a session's timer negotiation.
type Config struct {
	// DesiredMinTx is how often we would like to send while Up (bfd.DesiredMinTxInterval).
	DesiredMinTx time.Duration
	// RequiredMinRx is the fastest rate we accept packets at (bfd.RequiredMinRxInterval).
	RequiredMinRx time.Duration
	// DetectMult is the detection time multiplier (bfd.DetectMult).
	DetectMult uint8
}

// Defaults used by callers when a field is unset: 300 ms × 3 detects a loss in 0.9 s.
const (
	DefaultInterval   = 300 * time.Millisecond
	DefaultDetectMult = 3
	// slowTx is the least interval while the session is not Up (RFC 5880 section 6.8.3).
	slowTx = time.Second
	// MinInterval and MaxInterval bound the configured intervals.
	MinInterval = 10 * time.Millisecond
	MaxInterval = 60 * time.Second
)

// Validate checks c's ranges.
func (c Config) Validate() error {
	for name, d := range map[string]time.Duration{"desired min TX": c.DesiredMinTx, "required min RX": c.RequiredMinRx} {
		if d < MinInterval || d > MaxInterval {
			return fmt.Errorf("bfd %s interval %s must be %s-%s", name, d, MinInterval, MaxInterval)
		}
	}
	if c.DetectMult < 1 {
		return fmt.Errorf("bfd detect multiplier must be 1-255")
	}
	return nil
}

// machine is one session's RFC 5880 state variables and the reception, timer and
// configuration rules of section 6.8, without sockets or clocks so it can be
// table-tested. The session goroutine is its only user.
type machine struct {
	cfg         Config
	state       State
	diag        Diag
	localDisc   uint32
	remoteDisc  uint32
	remoteState State
	remoteDiag  Diag
	// remoteMinRx is bfd.RemoteMinRxInterval; 1 µs until the first packet (6.8.1).
	remoteMinRx     time.Duration
	remoteDesiredTx time.Duration
	remoteMult      uint8
	// txAdv/rxAdv are what we send in Desired Min TX and Required Min RX; txUse/rxUse are
	// what our transmit interval and the detection time use. They differ only during a
	// Poll Sequence (6.8.3).
	txAdv, rxAdv time.Duration
	txUse, rxUse time.Duration
	polling      bool
	counters     Counters
}

// Counters count a session's packets and transitions.
type Counters struct {
	PacketsIn  uint64
	PacketsOut uint64
	// Ups counts transitions to Up; Downs counts transitions from Up to another state.
	Ups   uint64
	Downs uint64
}

func newMachine(cfg Config, localDisc uint32) *machine {
	m := &machine{cfg: cfg, state: StateDown, localDisc: localDisc, remoteMinRx: time.Microsecond}
	m.resetSlow()
	return m
}

// resetSlow sets the intervals of a session that is not Up: at least one second between
// packets, and no poll in progress.
func (m *machine) resetSlow() {
	m.txAdv = max(m.cfg.DesiredMinTx, slowTx)
	m.txUse = m.txAdv
	m.rxAdv, m.rxUse = m.cfg.RequiredMinRx, m.cfg.RequiredMinRx
	m.polling = false
}

// startPoll advertises the configured intervals with a Poll Sequence. A faster transmit
// interval and a longer receive interval apply at once; a slower transmit interval and
// a shorter receive interval only when the Final arrives (6.8.3).
func (m *machine) startPoll() {
	m.txAdv, m.rxAdv = m.cfg.DesiredMinTx, m.cfg.RequiredMinRx
	if m.txAdv < m.txUse {
		m.txUse = m.txAdv
	}
	if m.rxAdv > m.rxUse {
		m.rxUse = m.rxAdv
	}
	// The peer must confirm the new values even when we could apply them at once.
	m.polling = true
}

// setConfig changes the local parameters: with a Poll Sequence while Up, at once
// otherwise.
func (m *machine) setConfig(cfg Config) {
	m.cfg = cfg
	if m.state == StateUp {
		m.startPoll()
		return
	}
	m.resetSlow()
}

// txInterval is the interval between periodic packets before jitter (6.8.7).
func (m *machine) txInterval() time.Duration {
	return max(m.txUse, m.remoteMinRx)
}

// detectTime is how long without a packet declares the session down in asynchronous
// mode (6.8.4); 0 before the first packet.
func (m *machine) detectTime() time.Duration {
	return time.Duration(m.remoteMult) * max(m.rxUse, m.remoteDesiredTx)
}

// mayTransmit reports whether periodic packets may be sent (6.8.7: not while the
// remote asked for no packets with a Required Min RX of 0).
func (m *machine) mayTransmit() bool { return m.remoteMinRx != 0 }

// packet is the next Control packet to send; final answers a Poll.
func (m *machine) packet(final bool) Packet {
	return Packet{
		Diag: m.diag, State: m.state, Poll: m.polling && !final, Final: final,
		DetectMult: m.cfg.DetectMult, MyDiscriminator: m.localDisc, YourDiscriminator: m.remoteDisc,
		DesiredMinTx: m.txAdv, RequiredMinRx: m.rxAdv,
	}
}

// setState moves the session to s with diagnostic d and keeps the counters and the
// interval rules; it reports whether the state changed.
func (m *machine) setState(s State, d Diag) bool {
	if s == m.state {
		return false
	}
	old := m.state
	m.state, m.diag = s, d
	switch {
	case s == StateUp:
		m.counters.Ups++
		m.startPoll()
	case old == StateUp:
		m.counters.Downs++
		m.resetSlow()
	}
	return true
}

// recv applies a received packet that passed Unmarshal and the demultiplexing (6.8.6).
// It returns whether a Final must be sent at once and whether the state changed.
func (m *machine) recv(p Packet) (sendFinal, changed bool) {
	m.counters.PacketsIn++
	m.remoteDisc = p.MyDiscriminator
	m.remoteState = p.State
	m.remoteDiag = p.Diag
	m.remoteMinRx = p.RequiredMinRx
	m.remoteDesiredTx = p.DesiredMinTx
	m.remoteMult = p.DetectMult
	if p.Final && m.polling {
		m.polling = false
		m.txUse, m.rxUse = m.txAdv, m.rxAdv
	}
	if m.state == StateAdminDown {
		return false, false
	}
	if p.State == StateAdminDown {
		if m.state != StateDown {
			changed = m.setState(StateDown, DiagNeighborDown)
		}
	} else {
		switch m.state {
		case StateDown:
			switch p.State {
			case StateDown:
				changed = m.setState(StateInit, DiagNone)
			case StateInit:
				changed = m.setState(StateUp, DiagNone)
			}
		case StateInit:
			if p.State == StateInit || p.State == StateUp {
				changed = m.setState(StateUp, DiagNone)
			}
		case StateUp:
			if p.State == StateDown {
				changed = m.setState(StateDown, DiagNeighborDown)
			}
		}
	}
	return p.Poll, changed
}

// expire handles the detection time passing without a packet (6.8.4, 6.8.1): the
// remote discriminator is forgotten and an Init or Up session goes Down.
func (m *machine) expire() (changed bool) {
	m.remoteDisc = 0
	m.remoteMult = 0
	if m.state == StateInit || m.state == StateUp {
		return m.setState(StateDown, DiagDetectExpired)
	}
	return false
}

// adminDown takes the session administratively down (it is being removed).
func (m *machine) adminDown() bool {
	return m.setState(StateAdminDown, DiagAdminDown)
}

// jitter reduces d by 0–25 %, or 10–25 % when the multiplier is 1 (6.8.7).
func jitter(d time.Duration, mult uint8) time.Duration {
	lo := 0.0
	if mult == 1 {
		lo = 0.10
	}
	f := lo + rand.Float64()*(0.25-lo) //nolint:gosec // timing jitter, not security
	return d - time.Duration(float64(d)*f)
}
