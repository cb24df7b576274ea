package suite

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// HTTPDoer is implemented by clients that make HTTP requests themselves (curl through
// a command prefix) instead of through Dial. Every request is a new connection.
type HTTPDoer interface {
	// HTTP sends one request and returns the status code and body of the answer.
	HTTP(ctx context.Context, method, url, body string) (int, []byte, error)
}

// ExecClient is a client host reached through a command prefix (--client-exec): HTTP
// through curl, ICMP through ping, held connections (TCP streams, UDP flows with one
// source port) through socat. The host needs curl and ping; socat only for the tests
// that hold a connection open.
type ExecClient struct {
	Exec Exec
	// Addr is the client's own IPv4 address as the cluster sees it.
	Addr netip.Addr
}

var (
	_ Client   = ExecClient{}
	_ HTTPDoer = ExecClient{}
)

// Address implements Client.
func (c ExecClient) Address() netip.Addr { return c.Addr }

// Ping implements Client: one echo request, one second to answer.
func (c ExecClient) Ping(ctx context.Context, addr netip.Addr) error {
	if _, err := c.Exec.Run(ctx, "ping", "-n", "-c", "1", "-W", "1", addr.String()); err != nil {
		return fmt.Errorf("ping %s from the client: %w", addr, err)
	}
	return nil
}

// HTTP implements HTTPDoer with curl.
func (c ExecClient) HTTP(ctx context.Context, method, url, body string) (int, []byte, error) {
	maxTime := "10"
	if d, ok := ctx.Deadline(); ok {
		maxTime = strconv.FormatFloat(max(time.Until(d).Seconds(), 0.1), 'f', 1, 64)
	}
	args := []string{"curl", "-sS", "-g", "--max-time", maxTime, "-X", method, "-o", "-", "-w", "\n%{http_code}"}
	var in []byte
	if body != "" {
		args = append(args, "--data-binary", "@-")
		in = []byte(body)
	}
	out, err := c.Exec.RunInput(ctx, in, append(args, url)...)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s from the client: %w", method, url, err)
	}
	i := strings.LastIndexByte(string(out), '\n')
	if i < 0 {
		return 0, nil, fmt.Errorf("%s %s from the client: curl printed no status: %q", method, url, out)
	}
	code, err := strconv.Atoi(strings.TrimSpace(string(out[i+1:])))
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s from the client: curl status %q: %w", method, url, out[i+1:], err)
	}
	return code, out[:i], nil
}

// Dial implements Client with socat on the client host: the connection is socat's
// standard input and output. A UDP connection keeps one source port for its life;
// every Write is one datagram.
func (c ExecClient) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s %s from the client: %w", network, addr, err)
	}
	var kind string
	switch network {
	case "tcp", "tcp4", "tcp6":
		kind = "TCP"
	case "udp", "udp4", "udp6":
		kind = "UDP"
	default:
		return nil, fmt.Errorf("dial %s %s from the client: %w", network, addr, ErrUnsupported)
	}
	fam := "4"
	if ap.Addr().Is6() {
		fam = "6"
	}
	// UDP goes through an unconnected socket (UDPn-SENDTO): the kernel reports no ICMP
	// error to it, so an unreachable answered while the route converges does not end the
	// flow (a connected socat socket exits on the first one; a Go UDP socket would not).
	suffix := ""
	if kind == "UDP" {
		suffix = "-SENDTO"
	}
	target := fmt.Sprintf("%s%s%s:%s:%d", kind, fam, suffix, ap.Addr(), ap.Port())
	if ap.Addr().Is6() {
		target = fmt.Sprintf("%s%s%s:[%s]:%d", kind, fam, suffix, ap.Addr(), ap.Port())
	}
	return startPipeConn(c.Exec.Command("socat", "-T", "600", "STDIO", target), ap)
}

// pipeConn is a net.Conn over a process's standard input and output. Pipes support
// deadlines, so SetDeadline works like on a socket.
type pipeConn struct {
	cmd    *exec.Cmd
	r, w   *os.File
	remote netip.AddrPort
	once   sync.Once
	waited chan error
}

func startPipeConn(argv []string, remote netip.AddrPort) (*pipeConn, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("create pipe: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("create pipe: %w", err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout = inR, outW
	if err := cmd.Start(); err != nil {
		inR.Close()
		inW.Close()
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("start %q: %w", strings.Join(argv, " "), err)
	}
	// The child holds its ends now.
	inR.Close()
	outW.Close()
	c := &pipeConn{cmd: cmd, r: outR, w: inW, remote: remote, waited: make(chan error, 1)}
	go func() { c.waited <- cmd.Wait() }()
	return c, nil
}

func (c *pipeConn) Read(b []byte) (int, error)  { return c.r.Read(b) }
func (c *pipeConn) Write(b []byte) (int, error) { return c.w.Write(b) }

func (c *pipeConn) Close() error {
	c.once.Do(func() {
		c.w.Close()
		// socat would linger for its half-close timeout; ending it closes the socket
		// at once, like closing a net.Conn.
		_ = c.cmd.Process.Signal(syscall.SIGTERM) // it may have exited already
		select {
		case <-c.waited:
		case <-time.After(2 * time.Second):
			_ = c.cmd.Process.Kill() // it ignored SIGTERM
			<-c.waited
		}
		c.r.Close()
	})
	return nil
}

func (c *pipeConn) LocalAddr() net.Addr  { return pipeAddr("client") }
func (c *pipeConn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(c.remote) }

func (c *pipeConn) SetDeadline(t time.Time) error {
	if err := c.r.SetDeadline(t); err != nil {
		return err
	}
	return c.w.SetDeadline(t)
}
func (c *pipeConn) SetReadDeadline(t time.Time) error  { return c.r.SetReadDeadline(t) }
func (c *pipeConn) SetWriteDeadline(t time.Time) error { return c.w.SetWriteDeadline(t) }

type pipeAddr string

func (a pipeAddr) Network() string { return "pipe" }
func (a pipeAddr) String() string  { return string(a) }

// ExecSubnetClient is an ExecClient on the nodes' own subnet whose route to the VIPs
// goes through the router (--subnet-client-exec). It counts replies with nftables
// counters on the interface of its route to the VIP, so the host needs nft and ip.
type ExecSubnetClient struct{ ExecClient }

var _ SubnetClient = ExecSubnetClient{}

const execReplyTable = "bgplb_conformance_replies"

// CountReplies implements SubnetClient: packets from src that came from the MAC
// address of the client's gateway towards src, and from any other MAC.
func (c ExecSubnetClient) CountReplies(ctx context.Context, src netip.Addr, fn func() error) (int, int, error) {
	dev, mac, err := c.gateway(ctx, src)
	if err != nil {
		return 0, 0, err
	}
	rules := fmt.Sprintf(`table netdev %[1]s {
	counter via_router {}
	counter direct {}
	chain in {
		type filter hook ingress device %[4]q priority 0; policy accept;
		ip saddr %[2]s ether saddr %[3]s counter name "via_router"
		ip saddr %[2]s ether saddr != %[3]s counter name "direct"
	}
}
`, execReplyTable, src, mac, dev)
	if _, err := c.Exec.RunInput(ctx, []byte(rules), "nft", "-f", "-"); err != nil {
		return 0, 0, fmt.Errorf("install reply counters on the subnet client: %w", err)
	}
	defer func() {
		// Best effort: a leftover table only counts.
		_, _ = c.Exec.Run(context.Background(), "nft", "delete", "table", "netdev", execReplyTable)
	}()
	if err := fn(); err != nil {
		return 0, 0, err
	}
	out, err := c.Exec.Run(ctx, "nft", "-j", "list", "counters", "table", "netdev", execReplyTable)
	if err != nil {
		return 0, 0, fmt.Errorf("read reply counters: %w", err)
	}
	var doc struct {
		Nftables []struct {
			Counter *struct {
				Name    string `json:"name"`
				Packets int    `json:"packets"`
			} `json:"counter"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return 0, 0, fmt.Errorf("decode reply counters: %w: %s", err, out)
	}
	var via, direct int
	for _, o := range doc.Nftables {
		if o.Counter == nil {
			continue
		}
		switch o.Counter.Name {
		case "via_router":
			via = o.Counter.Packets
		case "direct":
			direct = o.Counter.Packets
		}
	}
	return via, direct, nil
}

// gateway returns the device and the gateway's MAC address of the client's route to dst.
func (c ExecSubnetClient) gateway(ctx context.Context, dst netip.Addr) (string, string, error) {
	out, err := c.Exec.Run(ctx, "ip", "-j", "route", "get", dst.String())
	if err != nil {
		return "", "", fmt.Errorf("read the subnet client's route to %s: %w", dst, err)
	}
	var rts []struct {
		Gateway string `json:"gateway"`
		Dev     string `json:"dev"`
	}
	if err := json.Unmarshal(out, &rts); err != nil || len(rts) == 0 || rts[0].Gateway == "" {
		return "", "", fmt.Errorf("the subnet client's route to %s has no gateway: %s", dst, strings.TrimSpace(string(out)))
	}
	gw, dev := rts[0].Gateway, rts[0].Dev
	for try := 0; ; try++ {
		out, err = c.Exec.Run(ctx, "ip", "-j", "neigh", "show", gw, "dev", dev)
		if err != nil {
			return "", "", fmt.Errorf("read the subnet client's neighbour %s: %w", gw, err)
		}
		var ns []struct {
			LLAddr string `json:"lladdr"`
		}
		if json.Unmarshal(out, &ns) == nil && len(ns) > 0 && ns[0].LLAddr != "" {
			return dev, ns[0].LLAddr, nil
		}
		if try > 0 {
			return "", "", fmt.Errorf("the subnet client has no MAC address for its gateway %s: %s", gw, strings.TrimSpace(string(out)))
		}
		// Not resolved yet: one ping resolves it (an unanswered ping is fine).
		_, _ = c.Exec.Run(ctx, "ping", "-n", "-c", "1", "-W", "1", gw)
	}
}
