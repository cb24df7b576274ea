//go:build linux

package bpf

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// The end-to-end test runs real traffic through both programs:
//
//	netns cli            netns rtr                     netns node                  netns pod
//	c0 198.51.100.10 ── r1 198.51.100.1 (mtu 1280)
//	                     r0 198.18.0.1 ──────────── n0 198.18.0.11 [lb_uplink]
//	                                                  hpod 198.19.1.1 [lb_pod] ── eth0 198.19.1.5 (server pod1)
//	                                                  hpod2 198.19.2.1 [lb_pod] ─ eth0 198.19.2.5 (server pod2)
//
// (and the same in IPv6). VIP 203.0.113.100 / 2001:db8:ffff::100 is routed by
// rtr to the node and configured nowhere; the node has no route back to the
// client LAN and does not forward: only the datapath makes the VIP work, and
// replies can only find the client by going back to the router's MAC. The
// rtr -> cli link has a smaller MTU than the client's own interface, so large
// replies need path MTU discovery through the VIP (ICMP errors translated to
// the pod). Servers and clients are this test binary re-executed with
// `ip netns exec` (see TestMain), so no goroutine ever switches namespaces.

const (
	envE2EServer = "BGPLB_BPF_E2E_SERVER"
	envE2EClient = "BGPLB_BPF_E2E_CLIENT"
	envAttach    = "BGPLB_BPF_ATTACH"
	bigReply     = 64 << 10
)

func TestMain(m *testing.M) {
	if name := os.Getenv(envE2EServer); name != "" {
		runE2EServer(name)
		return
	}
	if spec := os.Getenv(envAttach); spec != "" {
		// pinDir|ifindex|linkPin: what a CNI plugin process does on ADD.
		parts := strings.Split(spec, "|")
		idx, _ := strconv.Atoi(parts[1])
		if err := AttachPod(parts[0], idx, parts[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if spec := os.Getenv(envE2EClient); spec != "" {
		out, err := runE2EClient(spec)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(out)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runE2EServer answers TCP on :8080 and UDP on :5353 with
// "peer=<remote> name=<name> <data>".
func runE2EServer(name string) {
	ln, err := net.Listen("tcp", "[::]:8080")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pc, err := net.ListenPacket("udp", "[::]:5353")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			ap := addr.(*net.UDPAddr).AddrPort()
			reply := fmt.Sprintf("peer=%s name=%s %s", netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), name, buf[:n])
			pc.WriteTo([]byte(reply), addr) //nolint:errcheck // test server: the client notices a lost reply
		}
	}()
	fmt.Println("ready")
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func(c net.Conn) {
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck // best effort
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				return
			}
			if line == "big\n" {
				c.Write(make([]byte, bigReply)) //nolint:errcheck // the client checks the length
				return
			}
			ap := c.RemoteAddr().(*net.TCPAddr).AddrPort()
			fmt.Fprintf(c, "peer=%s name=%s %s", netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), name, line)
		}(c)
	}
}

// runE2EClient: "tcp|addr:port|msg", "udp|addr:port|msg", "tcpfrom|lport|addr:port|msg",
// "tcpmany|addr:port|n", "tcpbig|addr:port" or "ping|addr".
// Prints "local=<addr:port> reply=<reply>".
func runE2EClient(spec string) (string, error) {
	parts := strings.SplitN(spec, "|", 3)
	switch parts[0] {
	case "tcpfrom":
		// tcpfrom|localport|addr:port|msg: like tcp, from a fixed client port.
		sub := strings.SplitN(parts[2], "|", 2)
		lport, _ := strconv.Atoi(parts[1])
		d := net.Dialer{
			Timeout:   2 * time.Second,
			LocalAddr: &net.TCPAddr{Port: lport},
			Control: func(_, _ string, rc syscall.RawConn) error {
				var serr error
				err := rc.Control(func(fd uintptr) {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
				})
				if err != nil {
					return err
				}
				return serr
			},
		}
		c, err := d.Dial("tcp", sub[0])
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second)) //nolint:errcheck // best effort
		if _, err := fmt.Fprintf(c, "%s\n", sub[1]); err != nil {
			return "", err
		}
		b, err := io.ReadAll(c)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("local=%s reply=%s", c.LocalAddr(), strings.TrimSpace(string(b))), nil
	case "tcpmany":
		// N sequential connections; counts replies per server name.
		n, _ := strconv.Atoi(parts[2])
		names := map[string]int{}
		for i := 0; i < n; i++ {
			c, err := net.DialTimeout("tcp", parts[1], 2*time.Second)
			if err != nil {
				return "", fmt.Errorf("connection %d: %w", i, err)
			}
			c.SetDeadline(time.Now().Add(2 * time.Second)) //nolint:errcheck // best effort
			fmt.Fprintf(c, "many\n")                       //nolint:errcheck // the read below fails too
			b, err := io.ReadAll(c)
			c.Close()
			if err != nil {
				return "", fmt.Errorf("connection %d: %w", i, err)
			}
			f := strings.Fields(string(b))
			if len(f) < 2 || !strings.HasPrefix(f[1], "name=") {
				return "", fmt.Errorf("connection %d: reply %q", i, b)
			}
			names[strings.TrimPrefix(f[1], "name=")]++
		}
		return fmt.Sprintf("ok=%d pod1=%d pod2=%d", n, names["pod1"], names["pod2"]), nil
	case "tcpbig":
		c, err := net.DialTimeout("tcp", parts[1], 2*time.Second)
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck // best effort
		if _, err := fmt.Fprintf(c, "big\n"); err != nil {
			return "", err
		}
		n, err := io.Copy(io.Discard, c)
		if err != nil {
			return "", fmt.Errorf("read after %d bytes: %w", n, err)
		}
		return fmt.Sprintf("local=%s reply=%d bytes", c.LocalAddr(), n), nil
	case "tcp", "udp":
		c, err := net.DialTimeout(parts[0], parts[1], 2*time.Second)
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second)) //nolint:errcheck // best effort
		if _, err := fmt.Fprintf(c, "%s\n", parts[2]); err != nil {
			return "", err
		}
		buf := make([]byte, 1500)
		n, err := c.Read(buf)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("local=%s reply=%s", c.LocalAddr(), strings.TrimSpace(string(buf[:n]))), nil
	case "ping":
		dst := netip.MustParseAddr(parts[1])
		network, laddr := "ip4:icmp", "0.0.0.0"
		var typ, reply icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
		proto := 1
		if dst.Is6() {
			network, laddr, typ, reply, proto = "ip6:ipv6-icmp", "::", ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply, 58
		}
		c, err := icmp.ListenPacket(network, laddr)
		if err != nil {
			return "", err
		}
		defer c.Close()
		msg := icmp.Message{Type: typ, Body: &icmp.Echo{ID: 0x77, Seq: 1, Data: []byte("bgplb-ping")}}
		b, err := msg.Marshal(nil) // ICMPv6 checksum is filled in by the kernel
		if err != nil {
			return "", err
		}
		if _, err := c.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			return "", err
		}
		c.SetDeadline(time.Now().Add(2 * time.Second)) //nolint:errcheck // best effort
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return "", err
			}
			m, err := icmp.ParseMessage(proto, buf[:n])
			if err != nil || m.Type != reply {
				continue
			}
			if e, ok := m.Body.(*icmp.Echo); ok && string(e.Data) == "bgplb-ping" {
				return fmt.Sprintf("local=- reply=echo-reply from %s", from), nil
			}
		}
	}
	return "", fmt.Errorf("bad client spec %q", spec)
}

// e2eClient runs the test binary as a client inside ns.
func e2eClient(ns *testNetns, spec string) (string, error) {
	cmd := exec.Command("ip", "netns", "exec", ns.name, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envE2EClient+"="+spec)
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return "", fmt.Errorf("client %q: %v: %s", spec, err, ee.Stderr)
		}
		return "", fmt.Errorf("client %q: %w", spec, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// TestEndToEnd runs the default delivery (the node's stack routes VIP traffic to the
// pod) with both attach modes, and the opt-in direct redirect with tcx.
func TestEndToEnd(t *testing.T) {
	for _, c := range []struct {
		mode     AttachMode
		delivery Delivery
	}{{AttachTCX, DeliveryStack}, {AttachTC, DeliveryStack}, {AttachTCX, DeliveryRedirect}} {
		t.Run(string(c.mode)+"/"+string(c.delivery), func(t *testing.T) { testEndToEnd(t, c.mode, c.delivery) })
	}
}

func testEndToEnd(t *testing.T, mode AttachMode, delivery Delivery) {
	SetDelivery(delivery)
	t.Cleanup(func() { SetDelivery(DeliveryStack) })
	pinDir := newPinDir(t)
	cli, rtr, node, pod, pod2 := newNetns(t), newNetns(t), newNetns(t), newNetns(t), newNetns(t)
	for _, ns := range []*testNetns{cli, rtr, node, pod, pod2} {
		run(t, "ip", "-n", ns.name, "link", "set", "lo", "up")
		// No duplicate address detection, also for the link-local addresses
		// the veths get: a tentative link-local drops the neighbour
		// discovery replies sent to it during the first second.
		run(t, "ip", "netns", "exec", ns.name, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	}
	run(t, "ip", "-n", cli.name, "link", "add", "c0", "type", "veth", "peer", "name", "r1", "netns", rtr.name)
	run(t, "ip", "-n", rtr.name, "link", "add", "r0", "type", "veth", "peer", "name", "n0", "netns", node.name)
	run(t, "ip", "-n", node.name, "link", "add", "hpod", "type", "veth", "peer", "name", "eth0", "netns", pod.name)
	run(t, "ip", "-n", node.name, "link", "add", "hpod2", "type", "veth", "peer", "name", "eth0", "netns", pod2.name)
	for _, c := range [][]string{
		{cli.name, "addr", "add", "198.51.100.10/24", "dev", "c0"},
		{cli.name, "addr", "add", "2001:db8:c::10/64", "dev", "c0", "nodad"},
		{cli.name, "link", "set", "c0", "up"},
		{cli.name, "route", "add", "default", "via", "198.51.100.1"},
		{cli.name, "-6", "route", "add", "default", "via", "2001:db8:c::1"},
		{rtr.name, "addr", "add", "198.51.100.1/24", "dev", "r1"},
		{rtr.name, "addr", "add", "2001:db8:c::1/64", "dev", "r1", "nodad"},
		{rtr.name, "link", "set", "r1", "mtu", "1280", "up"},
		{rtr.name, "addr", "add", "198.18.0.1/24", "dev", "r0"},
		{rtr.name, "addr", "add", "2001:db8:f::1/64", "dev", "r0", "nodad"},
		{rtr.name, "link", "set", "r0", "up"},
		{rtr.name, "route", "add", "203.0.113.100/32", "via", "198.18.0.11"},
		{rtr.name, "route", "add", "2001:db8:ffff::100/128", "via", "2001:db8:f::11"},
		{node.name, "addr", "add", "198.18.0.11/24", "dev", "n0"},
		{node.name, "addr", "add", "2001:db8:f::11/64", "dev", "n0", "nodad"},
		{node.name, "link", "set", "n0", "up"},
		{node.name, "addr", "add", "198.19.1.1/24", "dev", "hpod"},
		{node.name, "addr", "add", "2001:db8:1:1::1/64", "dev", "hpod", "nodad"},
		{node.name, "link", "set", "hpod", "up"},
		{pod.name, "addr", "add", "198.19.1.5/24", "dev", "eth0"},
		{pod.name, "addr", "add", "2001:db8:1:1::5/64", "dev", "eth0", "nodad"},
		{pod.name, "link", "set", "eth0", "up"},
		{pod.name, "route", "add", "default", "via", "198.19.1.1"},
		{pod.name, "-6", "route", "add", "default", "via", "2001:db8:1:1::1"},
		{node.name, "addr", "add", "198.19.2.1/24", "dev", "hpod2"},
		{node.name, "addr", "add", "2001:db8:1:2::1/64", "dev", "hpod2", "nodad"},
		{node.name, "link", "set", "hpod2", "up"},
		{pod2.name, "addr", "add", "198.19.2.5/24", "dev", "eth0"},
		{pod2.name, "addr", "add", "2001:db8:1:2::5/64", "dev", "eth0", "nodad"},
		{pod2.name, "link", "set", "eth0", "up"},
		{pod2.name, "route", "add", "default", "via", "198.19.2.1"},
		{pod2.name, "-6", "route", "add", "default", "via", "2001:db8:1:2::1"},
	} {
		run(t, "ip", append([]string{"-n"}, c...)...)
	}
	run(t, "ip", "netns", "exec", rtr.name, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	// The node routes like a Kubernetes node: it forwards (pods) and has a default route
	// to the router. The VIP is configured nowhere, so without the uplink program a
	// packet to it goes back to the router (until its TTL runs out).
	run(t, "ip", "netns", "exec", node.name, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	run(t, "ip", "-n", node.name, "route", "add", "default", "via", "198.18.0.1")
	run(t, "ip", "-n", node.name, "-6", "route", "add", "default", "via", "2001:db8:f::1")
	var upIf, podIf, pod2If int
	node.do(t, func() error {
		hp2, err := net.InterfaceByName("hpod2")
		if err != nil {
			return err
		}
		pod2If = hp2.Index
		if _, err := AttachPodMode(pinDir, pod2If, PodLinkPin(pinDir, "pod2", "eth0"), mode); err != nil {
			return err
		}
		n0, err := net.InterfaceByName("n0")
		if err != nil {
			return err
		}
		hp, err := net.InterfaceByName("hpod")
		if err != nil {
			return err
		}
		upIf, podIf = n0.Index, hp.Index
		if _, err := AttachUplinkMode(pinDir, upIf, UplinkLinkPin(pinDir, "n0"), mode); err != nil {
			return err
		}
		if _, err := AttachEgressMode(pinDir, upIf, EgressLinkPin(pinDir, "n0"), mode); err != nil {
			return err
		}
		_, err = AttachPodMode(pinDir, podIf, PodLinkPin(pinDir, "pod", "eth0"), mode)
		return err
	})

	maps, err := OpenMaps(pinDir)
	must(t, err)
	defer maps.Close()
	vip4, vip6 := netip.MustParseAddr("203.0.113.100"), netip.MustParseAddr("2001:db8:ffff::100")
	must(t, maps.PutBackend(1, Backend{Addr: ap("198.19.1.5:8080"), Ifindex: podIf}))
	must(t, maps.PutBackend(2, Backend{Addr: ap("198.19.1.5:5353"), Ifindex: podIf}))
	must(t, maps.PutBackend(3, Backend{Addr: ap("[2001:db8:1:1::5]:8080"), Ifindex: podIf}))
	must(t, maps.PutBackend(4, Backend{Addr: ap("[2001:db8:1:1::5]:5353"), Ifindex: podIf}))
	must(t, maps.PutBackend(6, Backend{Addr: ap("198.19.2.5:8080"), Ifindex: pod2If}))
	must(t, maps.PutBackend(7, Backend{Addr: ap("[2001:db8:1:2::5]:8080"), Ifindex: pod2If}))
	must(t, maps.PutService(ServiceKey{VIP: vip4, Port: 80, Proto: ProtoTCP}, Service{ID: 1, Local: true}, []uint32{1, 6}))
	must(t, maps.PutService(ServiceKey{VIP: vip4, Port: 53, Proto: ProtoUDP}, Service{ID: 2, Local: true}, []uint32{2}))
	must(t, maps.PutService(ServiceKey{VIP: vip6, Port: 80, Proto: ProtoTCP}, Service{ID: 3, Local: true}, []uint32{3, 7}))
	must(t, maps.PutService(ServiceKey{VIP: vip6, Port: 53, Proto: ProtoUDP}, Service{ID: 4, Local: true}, []uint32{4}))
	must(t, maps.PutService(ServiceKey{VIP: vip4, Port: 81, Proto: ProtoTCP}, Service{ID: 5, Local: true}, nil))
	must(t, maps.PutVIP(vip4))
	must(t, maps.PutVIP(vip6))

	for name, ns := range map[string]*testNetns{"pod1": pod, "pod2": pod2} {
		srv := exec.Command("ip", "netns", "exec", ns.name, os.Args[0], "-test.run=^$")
		srv.Env = append(os.Environ(), envE2EServer+"="+name)
		stdout, err := srv.StdoutPipe()
		must(t, err)
		srv.Stderr = os.Stderr
		must(t, srv.Start())
		t.Cleanup(func() {
			srv.Process.Kill() //nolint:errcheck // the server may already have exited
			srv.Wait()         //nolint:errcheck // killed on purpose
		})
		if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
			t.Fatalf("server %s did not start: %q %v", name, line, err)
		}
	}

	for _, c := range []struct{ spec, client string }{
		{"tcp|203.0.113.100:80|hello-tcp4", "198.51.100.10"},
		{"udp|203.0.113.100:53|hello-udp4", "198.51.100.10"},
		{"tcp|[2001:db8:ffff::100]:80|hello-tcp6", "2001:db8:c::10"},
		{"udp|[2001:db8:ffff::100]:53|hello-udp6", "2001:db8:c::10"},
	} {
		out, err := e2eClient(cli, c.spec)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		// The server saw the client's own address and port (no SNAT), and
		// the reply came back from the VIP (the client's socket accepted it).
		t.Logf("%s: %s", c.spec, out)
		var local, reply string
		fmt.Sscanf(out, "local=%s reply=peer=%s", &local, &reply) //nolint:errcheck // checked below
		msg := c.spec[strings.LastIndex(c.spec, "|")+1:]
		if local == "" || reply != local || !strings.HasSuffix(out, msg) || !strings.HasPrefix(netip.MustParseAddrPort(local).Addr().String(), c.client) {
			t.Errorf("%s: got %q, want the server to see the client's address %s", c.spec, out, c.client)
		}
	}
	for _, vip := range []string{"203.0.113.100", "2001:db8:ffff::100"} {
		out, err := e2eClient(cli, "ping|"+vip)
		if err != nil || !strings.Contains(out, "echo-reply from "+vip) {
			t.Errorf("ping %s: %q %v", vip, out, err)
		}
	}
	// Many connections spread over both pods (Maglev over the 5-tuple), none lost.
	for _, vip := range []string{"203.0.113.100:80", "[2001:db8:ffff::100]:80"} {
		out, err := e2eClient(cli, "tcpmany|"+vip+"|300")
		if err != nil {
			t.Errorf("300 connections to %s: %v", vip, err)
			continue
		}
		t.Logf("300 connections to %s: %s", vip, out)
		var ok, n1, n2 int
		fmt.Sscanf(out, "ok=%d pod1=%d pod2=%d", &ok, &n1, &n2) //nolint:errcheck // checked below
		if ok != 300 || n1+n2 != 300 || n1 < 60 || n2 < 60 {
			t.Errorf("300 connections to %s: %s, want all answered and both pods used", vip, out)
		}
	}

	// 64 KiB replies: segments of the client's MSS (1460) do not fit the
	// router's 1280-byte link, so this only completes when the router's
	// ICMP errors reach the pod.
	for _, vip := range []string{"203.0.113.100:80", "[2001:db8:ffff::100]:80"} {
		out, err := e2eClient(cli, "tcpbig|"+vip)
		if err != nil || !strings.HasSuffix(out, fmt.Sprintf("reply=%d bytes", bigReply)) {
			t.Errorf("large reply from %s: %q %v", vip, out, err)
		}
	}
	if _, err := e2eClient(cli, "tcp|203.0.113.100:81|nobody"); err == nil {
		t.Errorf("Local service without backend answered")
	}

	// Reverse-NAT entries outlive their flows: after a VIP connection from
	// client port P answered by pod1, the client connects to pod1's own
	// address from the same port (plain routing through the node). That
	// flow has the same tuple at the pod and must not be rewritten.
	run(t, "ip", "-n", rtr.name, "route", "add", "198.19.1.0/24", "via", "198.18.0.11")
	port := 0
	for p := 45000; p < 45050 && port == 0; p++ {
		if out, err := e2eClient(cli, fmt.Sprintf("tcpfrom|%d|203.0.113.100:80|vip", p)); err == nil && strings.Contains(out, "name=pod1") {
			port = p
		}
	}
	if port == 0 {
		t.Fatal("no VIP connection from ports 45000-45049 reached pod1")
	}
	out, err := e2eClient(cli, fmt.Sprintf("tcpfrom|%d|198.19.1.5:8080|direct", port))
	if want := fmt.Sprintf("reply=peer=198.51.100.10:%d name=pod1 direct", port); err != nil || !strings.HasSuffix(out, want) {
		t.Errorf("direct connection from the port of an earlier VIP flow: %q %v, want %q", out, err, want)
	}

	testForwardPolicy(t, cli, node, delivery)

	// Control: without the uplink program the VIP is unreachable.
	// (Inside the node's namespace: a legacy tc filter is found on its interfaces.)
	node.do(t, func() error { return DetachUplink(UplinkLinkPin(pinDir, "n0")) })
	if out, err := e2eClient(cli, "tcp|203.0.113.100:80|detached"); err == nil {
		t.Errorf("VIP answered without the datapath: %q", out)
	}

	for id := uint32(1); id <= 4; id++ {
		st, err := maps.ServiceStats(id)
		must(t, err)
		if st.Packets == 0 {
			t.Errorf("service %d: no packets counted", id)
		}
	}
	drops, err := maps.Drops()
	must(t, err)
	if drops[DropNoLocalBackend] == 0 {
		t.Errorf("drops = %v, want noLocalBackend counted", drops)
	}
	for r, n := range drops {
		if r != DropNoLocalBackend {
			t.Errorf("unexpected drops %v: %d", r, n)
		}
	}
}

// testForwardPolicy stands for a NetworkPolicy enforcer (what one amounts to on the
// node): an nftables forward chain that counts the packets to the pods and then drops
// them. With DeliveryStack the VIP's packets pass through it (counted) and the drop
// blocks them; with DeliveryRedirect they bypass it (documented: the opt-in bypasses
// NetworkPolicy).
func testForwardPolicy(t *testing.T, cli, node *testNetns, delivery Delivery) {
	t.Helper()
	nft := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("ip", append([]string{"netns", "exec", node.name, "nft"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("nft %v: %v: %s", args, err, out)
		}
		return string(out)
	}
	nft("add", "table", "inet", "bgplbtest")
	nft("add", "chain", "inet", "bgplbtest", "fw", "{ type filter hook forward priority 0; policy accept; }")
	nft("add", "rule", "inet", "bgplbtest", "fw", "tcp", "dport", "8080", "counter")
	defer nft("delete", "table", "inet", "bgplbtest")
	for _, vip := range []string{"203.0.113.100:80", "[2001:db8:ffff::100]:80"} {
		if out, err := e2eClient(cli, "tcp|"+vip+"|counted"); err != nil || !strings.HasSuffix(out, "counted") {
			t.Errorf("VIP %s before the forward drop: %q %v", vip, out, err)
		}
	}
	counted := nft("list", "chain", "inet", "bgplbtest", "fw")
	seen := !strings.Contains(counted, "counter packets 0 ")
	if want := delivery == DeliveryStack; seen != want {
		t.Errorf("delivery %s: forward chain saw VIP packets = %v, want %v:\n%s", delivery, seen, want, counted)
	}
	nft("add", "rule", "inet", "bgplbtest", "fw", "tcp", "dport", "8080", "drop")
	for _, vip := range []string{"203.0.113.100:80", "[2001:db8:ffff::100]:80"} {
		out, err := e2eClient(cli, "tcp|"+vip+"|dropped")
		switch {
		case delivery == DeliveryStack && err == nil:
			t.Errorf("VIP %s answered through a forward drop (policy bypassed): %q", vip, out)
		case delivery == DeliveryRedirect && err != nil:
			t.Errorf("VIP %s with direct redirect: %v (the opt-in bypasses the forward chain)", vip, err)
		}
	}
}
