package bfd

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sort"
	"sync"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"k8s.io/klog/v2"
)

// Port is the UDP port of single-hop BFD Control packets (RFC 5881 section 4).
const Port = 3784

// ttl is the only TTL (hop limit) single-hop packets are sent and accepted with.
const ttl = 255

// Options configure a Manager.
type Options struct {
	// ListenPort is where Control packets are received (default Port); PeerPort is
	// where they are sent (default Port). Tests use other ports to run two managers on
	// one host.
	ListenPort, PeerPort int
	// OnChange is called from the session's goroutine after every state change. It may
	// block that session (and only it) for as long as it runs.
	OnChange func(Status)
}

// Manager runs BFD sessions keyed by peer address. It is safe for concurrent use.
type Manager struct {
	opts   Options
	logger klog.Logger

	mu       sync.Mutex
	sessions map[netip.Addr]*managed // peer address -> session
	byDisc   map[uint32]*Session     // local discriminator -> session
	recv     map[bool]net.PacketConn // is IPv4 -> receive socket
	closed   bool
}

type managed struct {
	s     *Session
	cfg   Config
	local netip.Addr
}

// NewManager returns a Manager with no sessions; sockets open with the first session
// of each address family.
func NewManager(logger klog.Logger, opts Options) *Manager {
	if opts.ListenPort == 0 {
		opts.ListenPort = Port
	}
	if opts.PeerPort == 0 {
		opts.PeerPort = Port
	}
	return &Manager{opts: opts, logger: logger.WithName("bfd"), sessions: map[netip.Addr]*managed{},
		byDisc: map[uint32]*Session{}, recv: map[bool]net.PacketConn{}}
}

// Set makes a session with peer exist with cfg, sending from local (invalid: the kernel
// chooses). A session that exists with another local address is re-created; one with
// another Config changes it with a Poll Sequence, without going down.
func (m *Manager) Set(peer, local netip.Addr, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("set bfd session %s: %w", peer, err)
	}
	peer, local = peer.Unmap(), local.Unmap()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("set bfd session %s: manager closed", peer)
	}
	if old, ok := m.sessions[peer]; ok {
		if old.local == local {
			if old.cfg != cfg {
				old.cfg = cfg
				select { // only the latest config matters; we are its only sender
				case <-old.s.cfgCh:
				default:
				}
				old.s.cfgCh <- cfg
			}
			return nil
		}
		m.removeLocked(peer)
	}
	if err := m.listenLocked(peer.Is4()); err != nil {
		return fmt.Errorf("set bfd session %s: %w", peer, err)
	}
	conn, err := m.dial(peer, local)
	if err != nil {
		return fmt.Errorf("set bfd session %s: %w", peer, err)
	}
	disc := rand.Uint32() //nolint:gosec // a discriminator is an identifier, not a secret
	for disc == 0 || m.byDisc[disc] != nil {
		disc = rand.Uint32() //nolint:gosec // as above
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Session{peer: peer, local: local, conn: conn, rx: make(chan Packet, 16), cfgCh: make(chan Config, 1),
		onChange: m.opts.OnChange, logger: m.logger.WithValues("peer", peer), cancel: cancel,
		done: make(chan struct{}), disc: disc}
	m.sessions[peer] = &managed{s: s, cfg: cfg, local: local}
	m.byDisc[disc] = s
	go s.run(ctx, cfg)
	m.logger.Info("BFD session added", "peer", peer, "local", local, "minTx", cfg.DesiredMinTx,
		"minRx", cfg.RequiredMinRx, "multiplier", cfg.DetectMult)
	return nil
}

// Remove stops the session with peer (it sends AdminDown first); unknown peers are a
// no-op.
func (m *Manager) Remove(peer netip.Addr) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.removeLocked(peer.Unmap())
}

func (m *Manager) removeLocked(peer netip.Addr) {
	old, ok := m.sessions[peer]
	if !ok {
		return
	}
	delete(m.sessions, peer)
	delete(m.byDisc, old.s.disc)
	old.s.cancel()
	<-old.s.done
}

// Status returns the state of the session with peer.
func (m *Manager) Status(peer netip.Addr) (Status, bool) {
	m.mu.Lock()
	ms, ok := m.sessions[peer.Unmap()]
	m.mu.Unlock()
	if !ok {
		return Status{}, false
	}
	return ms.s.Status(), true
}

// Sessions returns every session's state, sorted by peer.
func (m *Manager) Sessions() []Status {
	m.mu.Lock()
	out := make([]Status, 0, len(m.sessions))
	for _, ms := range m.sessions {
		out = append(out, ms.s.Status())
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Peer.Less(out[j].Peer) })
	return out
}

// Close removes every session and closes the sockets.
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for peer := range m.sessions {
		m.removeLocked(peer)
	}
	for _, c := range m.recv {
		c.Close()
	}
	m.closed = true
}

// dial opens the session's send socket: a source port in 49152–65535 (RFC 5881
// section 4), connected to the peer, TTL 255.
func (m *Manager) dial(peer, local netip.Addr) (*net.UDPConn, error) {
	network := "udp4"
	if peer.Is6() {
		network = "udp6"
	}
	var lastErr error
	for range 32 {
		laddr := &net.UDPAddr{Port: 49152 + rand.IntN(16384)} //nolint:gosec // port choice
		if local.IsValid() {
			laddr.IP = local.AsSlice()
		}
		raddr := net.UDPAddrFromAddrPort(netip.AddrPortFrom(peer, uint16(m.opts.PeerPort)))
		c, err := net.DialUDP(network, laddr, raddr)
		if errors.Is(err, syscall.EADDRINUSE) {
			lastErr = err
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", raddr, err)
		}
		if peer.Is4() {
			err = ipv4.NewConn(c).SetTTL(ttl)
		} else {
			err = ipv6.NewConn(c).SetHopLimit(ttl)
		}
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("set TTL 255 on socket to %s: %w", raddr, err)
		}
		return c, nil
	}
	return nil, fmt.Errorf("find a free source port: %w", lastErr)
}

// listenLocked opens the receive socket of a family once and starts its reader.
func (m *Manager) listenLocked(is4 bool) error {
	if m.recv[is4] != nil {
		return nil
	}
	network, addr := "udp6", fmt.Sprintf("[::]:%d", m.opts.ListenPort)
	if is4 {
		network, addr = "udp4", fmt.Sprintf("0.0.0.0:%d", m.opts.ListenPort)
	}
	c, err := net.ListenPacket(network, addr)
	if err != nil {
		return fmt.Errorf("listen on %s %s: %w", network, addr, err)
	}
	var read func([]byte) (int, int, net.Addr, error) // -> bytes, ttl, source
	if is4 {
		pc := ipv4.NewPacketConn(c)
		if err := pc.SetControlMessage(ipv4.FlagTTL, true); err != nil {
			c.Close()
			return fmt.Errorf("enable IP_RECVTTL: %w", err)
		}
		read = func(b []byte) (int, int, net.Addr, error) {
			n, cm, src, err := pc.ReadFrom(b)
			if cm == nil {
				return n, -1, src, err
			}
			return n, cm.TTL, src, err
		}
	} else {
		pc := ipv6.NewPacketConn(c)
		if err := pc.SetControlMessage(ipv6.FlagHopLimit, true); err != nil {
			c.Close()
			return fmt.Errorf("enable IPV6_RECVHOPLIMIT: %w", err)
		}
		read = func(b []byte) (int, int, net.Addr, error) {
			n, cm, src, err := pc.ReadFrom(b)
			if cm == nil {
				return n, -1, src, err
			}
			return n, cm.HopLimit, src, err
		}
	}
	m.recv[is4] = c
	go m.readLoop(read)
	return nil
}

// readLoop receives Control packets until the socket is closed and hands each valid
// one to its session.
func (m *Manager) readLoop(read func([]byte) (int, int, net.Addr, error)) {
	buf := make([]byte, 1500)
	for {
		n, hops, src, err := read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			m.logger.V(2).Info("Read BFD packet failed", "err", err)
			continue
		}
		ua, ok := src.(*net.UDPAddr)
		if !ok {
			continue
		}
		from := ua.AddrPort().Addr().Unmap()
		if hops != ttl {
			m.logger.V(4).Info("Dropped BFD packet: TTL is not 255", "from", from, "ttl", hops)
			continue
		}
		p, err := Unmarshal(buf[:n])
		if err != nil {
			m.logger.V(4).Info("Dropped BFD packet", "from", from, "err", err)
			continue
		}
		if s := m.lookup(p, from); s != nil {
			s.deliver(p)
		}
	}
}

// lookup demultiplexes a packet (RFC 5880 section 6.3): by Your Discriminator when it
// is set, otherwise by the source address; either way the source must be the peer.
func (m *Manager) lookup(p Packet, from netip.Addr) *Session {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p.YourDiscriminator != 0 {
		s := m.byDisc[p.YourDiscriminator]
		if s == nil || s.peer != from {
			return nil
		}
		return s
	}
	if ms := m.sessions[from]; ms != nil {
		return ms.s
	}
	return nil
}
