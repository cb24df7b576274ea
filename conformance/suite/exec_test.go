package suite

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"slices"
	"testing"
	"time"
)

func TestParseExec(t *testing.T) {
	for in, want := range map[string]Exec{
		"":                                nil,
		"ip netns exec bgplb-router":      {"ip", "netns", "exec", "bgplb-router"},
		`ssh  -o "ProxyJump a b" admin@r`: {"ssh", "-o", "ProxyJump a b", "admin@r"},
		`kubectl exec -n 'net x' r --`:    {"kubectl", "exec", "-n", "net x", "r", "--"},
		`sh -c "echo \"hi\"" a\ b`:        {"sh", "-c", `echo "hi"`, "a b"},
	} {
		got, err := ParseExec(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("ParseExec(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	ssh := Exec{"ssh", "admin@r"}
	if got, want := ssh.Command("vtysh", "-c", "show bgp neighbors json", "it's"), []string{"ssh", "admin@r", "vtysh", "-c", "'show bgp neighbors json'", `'it'\''s'`}; !slices.Equal(got, want) {
		t.Errorf("through ssh: %q, want %q", got, want)
	}
	if got := (Exec{"kubectl", "exec", "r", "--"}).Command("show bgp"); !slices.Equal(got, []string{"kubectl", "exec", "r", "--", "show bgp"}) {
		t.Errorf("through kubectl: %q", got)
	}
	if _, err := ParseExec(`ssh "admin@r`); err == nil {
		t.Error("an unterminated quote was accepted")
	}
}

// TestExecClient runs the client's curl and socat on this machine (empty prefix)
// against a local server.
func TestExecClient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, "%s %s\n", r.Method, r.URL.Path)
	}))
	defer srv.Close()
	ap := netip.MustParseAddrPort(srv.Listener.Addr().String())
	c := ExecClient{Addr: netip.MustParseAddr("127.0.0.1")}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if got, err := HTTPGetFrom(ctx, c, 5*time.Second, ap.Addr(), ap.Port(), "/hostname"); err != nil || got != "GET /hostname" {
		t.Errorf("GET through curl = %q, %v", got, err)
	}
	if got, err := httpDo(ctx, c, 5*time.Second, http.MethodPost, ap.Addr(), ap.Port(), "/ready", "false"); err != nil || got != "POST /ready" {
		t.Errorf("POST through curl = %q, %v", got, err)
	}
	if _, err := HTTPGetFrom(ctx, c, 5*time.Second, ap.Addr(), ap.Port(), "/missing"); err == nil {
		t.Error("a 404 was not an error")
	}

	if _, err := exec.LookPath("socat"); err != nil {
		t.Skip("no socat on this machine (make deps installs it)")
	}
	conn, err := c.Dial(ctx, "tcp", ap.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	for i := 0; i < 2; i++ { // two requests on one held connection
		if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := fmt.Fprintf(conn, "GET /stream%d HTTP/1.1\r\nHost: x\r\n\r\n", i); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d on the held connection: %v", i, err)
		}
		body := make([]byte, resp.ContentLength)
		if _, err := io.ReadFull(resp.Body, body); err != nil || string(body) != fmt.Sprintf("GET /stream%d\n", i) {
			t.Errorf("answer %d = %q, %v", i, body, err)
		}
		resp.Body.Close()
	}
}

// TestExecClientUDPSurvivesUnreachable: a UDP flow through socat keeps its source port
// and survives an ICMP port unreachable (as while a route converges): the first datagram
// goes to a port nothing listens on, the next ones are echoed once a server binds it.
func TestExecClientUDPSurvivesUnreachable(t *testing.T) {
	if _, err := exec.LookPath("socat"); err != nil {
		t.Skip("no socat on this machine (make deps installs it)")
	}
	probe, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.LocalAddr().String()
	probe.Close() // the port is closed now: a datagram to it is answered by an ICMP unreachable
	conn, err := ExecClient{}.Dial(context.Background(), "udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("lost\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let the unreachable arrive before the server binds
	srv, err := net.ListenPacket("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	from := make(chan string, 4)
	go func() {
		buf := make([]byte, 64)
		for {
			n, src, err := srv.ReadFrom(buf)
			if err != nil {
				return
			}
			from <- src.String()
			_, _ = srv.WriteTo(buf[:n], src)
		}
	}()
	br := bufio.NewReader(conn)
	for i := 0; i < 2; i++ {
		if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := fmt.Fprintf(conn, "ping%d\n", i); err != nil {
			t.Fatalf("datagram %d after the unreachable: %v", i, err)
		}
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("ping%d\n", i) {
			t.Fatalf("echo %d after the unreachable = %q, %v", i, line, err)
		}
	}
	if a, b := <-from, <-from; a != b {
		t.Errorf("datagrams came from %s and %s, want one source port", a, b)
	}
}
