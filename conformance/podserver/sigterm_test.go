package main

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bgplb/bgplb/internal/poll"
)

func mustAddrPort(t *testing.T, ip string, port int) netip.AddrPort {
	t.Helper()
	return netip.AddrPortFrom(netip.MustParseAddr(ip), uint16(port))
}

func freePort(t *testing.T, network string) int {
	t.Helper()
	switch network {
	case "tcp":
		l, err := net.Listen("tcp", ":0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	default:
		c, err := net.ListenUDP("udp", &net.UDPAddr{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
}

// TestBinarySIGTERM builds the real binary and checks the shutdown sequence a
// kubelet relies on: SIGTERM → /ready 503 while still serving → exit 0 after the
// delay taken from SHUTDOWN_DELAY (overriding --shutdown-delay).
func TestBinarySIGTERM(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "podserver")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	tcp, udp := freePort(t, "tcp"), freePort(t, "udp")
	cmd := exec.Command(bin, "--name", "bin-pod", "--tcp", fmt.Sprint(tcp), "--udp", fmt.Sprint(udp), "--shutdown-delay", "30s")
	cmd.Env = append(os.Environ(), "SHUTDOWN_DELAY=1500ms")
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // may already have exited
		<-exited
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", tcp)
	poll.Eventually(t, 10*time.Second, 20*time.Millisecond, "the podserver ready", func() bool {
		resp, err := httpGet(base + "/ready")
		return err == nil && resp == 200
	})
	if code, body := do(t, "GET", base+"/hostname", ""); code != 200 || body != "bin-pod" {
		t.Fatalf("hostname = %d %q", code, body)
	}
	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, time.Second, 20*time.Millisecond, "/ready 503 after SIGTERM", func() bool {
		code, err := httpGet(base + "/ready")
		return err == nil && code == 503
	})
	if code, body := do(t, "GET", base+"/hostname", ""); code != 200 || body != "bin-pod" {
		t.Errorf("hostname while terminating = %d %q", code, body)
	}
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(mustAddrPort(t, "127.0.0.1", udp)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	n, err := conn.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "hostname=bin-pod client=127.0.0.1:") {
		t.Errorf("UDP while terminating: %q, %v", buf[:n], err)
	}
	select {
	case err := <-exited:
		elapsed := time.Since(sent)
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, logs.String())
		}
		if elapsed < 1400*time.Millisecond || elapsed > 5*time.Second {
			t.Errorf("exited %s after SIGTERM, want about 1.5s", elapsed)
		}
		exited <- nil // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatalf("did not exit after SIGTERM\n%s", logs.String())
	}
}

func httpGet(url string) (int, error) {
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
