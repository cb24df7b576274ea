package bfd

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"

	"k8s.io/klog/v2"
)

// Status is a snapshot of one session.
type Status struct {
	Peer  netip.Addr
	Local netip.Addr
	State State
	// Diag is our diagnostic: why the session last left Up.
	Diag        Diag
	RemoteState State
	RemoteDiag  Diag
	// TxInterval is the negotiated interval between our packets (before jitter);
	// DetectTime is how long without a packet from the peer takes the session down
	// (0 before the peer was heard).
	TxInterval time.Duration
	DetectTime time.Duration
	// Since is when State was entered.
	Since time.Time
	Counters
}

// Session is one BFD session with a neighbour. Its goroutine owns the machine; the
// Manager feeds it received packets.
type Session struct {
	peer, local netip.Addr
	conn        *net.UDPConn // connected to the peer's port 3784, TTL 255
	rx          chan Packet
	cfgCh       chan Config
	onChange    func(Status)
	logger      klog.Logger
	cancel      context.CancelFunc
	done        chan struct{}
	disc        uint32

	mu     sync.Mutex
	status Status
}

func (s *Session) snapshot(m *machine, since time.Time) Status {
	return Status{
		Peer: s.peer, Local: s.local, State: m.state, Diag: m.diag, RemoteState: m.remoteState,
		RemoteDiag: m.remoteDiag, TxInterval: m.txInterval(), DetectTime: m.detectTime(), Since: since,
		Counters: m.counters,
	}
}

// Status returns the session's current state.
func (s *Session) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// deliver hands a received packet to the session goroutine; a full queue drops it, as
// a lossy link would.
func (s *Session) deliver(p Packet) {
	select {
	case s.rx <- p:
	default:
	}
}

func (s *Session) send(m *machine, final bool) {
	if _, err := s.conn.Write(m.packet(final).Marshal()); err != nil {
		// The link may be down: that is what BFD detects; log at a verbose level only.
		s.logger.V(4).Info("Send BFD packet failed", "err", err)
		return
	}
	m.counters.PacketsOut++
}

// run is the session goroutine: periodic transmission, detection timer, received
// packets and configuration changes, until ctx ends; then it sends AdminDown so the
// peer does not take the removal for a failure (RFC 5880 section 6.8.16).
func (s *Session) run(ctx context.Context, cfg Config) {
	defer close(s.done)
	defer s.conn.Close()
	m := newMachine(cfg, s.disc)
	since := time.Now()
	// publish stores the snapshot and, on a change, logs it and calls onChange (not
	// for the AdminDown of a removal: the caller asked for it).
	publish := func(changed bool) {
		if changed {
			since = time.Now()
		}
		st := s.snapshot(m, since)
		s.mu.Lock()
		s.status = st
		s.mu.Unlock()
		if changed {
			s.logger.Info("BFD session state changed", "state", st.State, "diag", st.Diag,
				"remoteState", st.RemoteState)
			if s.onChange != nil && st.State != StateAdminDown {
				s.onChange(st)
			}
		}
	}
	publish(false)
	tx := time.NewTimer(jitter(m.txInterval(), cfg.DetectMult))
	defer tx.Stop()
	detect := time.NewTimer(time.Hour)
	detect.Stop()
	defer detect.Stop()
	for {
		select {
		case <-ctx.Done():
			m.adminDown()
			s.send(m, false)
			publish(true)
			return
		case c := <-s.cfgCh:
			m.setConfig(c)
			s.send(m, false) // start the Poll Sequence now
			publish(false)
		case p := <-s.rx:
			wasUp := m.state == StateUp
			final, changed := m.recv(p)
			if final {
				s.send(m, true)
			}
			if d := m.detectTime(); d > 0 {
				detect.Reset(d)
			}
			if changed && !wasUp && m.state != StateDown {
				// Down->Init or ->Up: tell the peer now rather than in up to a second.
				s.send(m, false)
				tx.Reset(jitter(m.txInterval(), m.cfg.DetectMult))
			}
			publish(changed)
		case <-tx.C:
			if m.mayTransmit() {
				s.send(m, false)
			}
			tx.Reset(jitter(m.txInterval(), m.cfg.DetectMult))
			publish(false)
		case <-detect.C:
			publish(m.expire())
		}
	}
}
