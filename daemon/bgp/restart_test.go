package bgp

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"k8s.io/klog/v2"

	"github.com/bgplb/bgplb/internal/poll"
)

// Environment of the helper speaker process (see TestMain).
const (
	envHelperMode = "BGPLB_TEST_SPEAKER_MODE" // graceful | hard | serve
	envHelperPort = "BGPLB_TEST_SPEAKER_PEER_PORT"
	envRestarting = "BGPLB_TEST_SPEAKER_RESTARTING"
)

var restartVIP = netip.MustParsePrefix("203.0.113.77/32")

// TestMain runs the helper speaker when the test binary is re-executed by a restart
// test: a real process whose exit closes its BGP sessions like a daemon's would.
func TestMain(m *testing.M) {
	if mode := os.Getenv(envHelperMode); mode != "" {
		if err := runHelperSpeaker(mode); err != nil {
			fmt.Fprintln(os.Stderr, "helper speaker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runHelperSpeaker announces restartVIP to 127.0.0.1:$port with graceful restart, prints
// ANNOUNCED once the peer has it, then stops per mode: graceful (Stop(true) and exit),
// hard (Stop(false)), serve (wait for stdin EOF, then Stop(false)).
func runHelperSpeaker(mode string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	port, err := strconv.Atoi(os.Getenv(envHelperPort))
	if err != nil {
		return err
	}
	sp := NewSpeaker(klog.Background())
	if err := sp.Start(ctx, Global{ASN: nodeASN, RouterID: netip.MustParseAddr("198.18.0.11"), ListenPort: -1, Restarting: os.Getenv(envRestarting) == "1"}); err != nil {
		return err
	}
	if err := sp.SetAllowedPrefixes(ctx, []netip.Prefix{vipPool}); err != nil {
		return err
	}
	if err := sp.SetPeers(ctx, []PeerConfig{{
		Name: "router", Address: netip.MustParseAddr("127.0.0.1"), Port: uint16(port), PeerASN: routerASN,
		ConnectRetry: time.Second, GracefulRestart: GracefulRestart{Enabled: true, RestartTime: 120 * time.Second},
	}}); err != nil {
		return err
	}
	if err := sp.Announce(ctx, Path{Prefix: restartVIP}); err != nil {
		return err
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := sp.Peers(ctx)
		if err != nil {
			return err
		}
		if len(st) == 1 && st[0].State == StateEstablished && st[0].PrefixesSent == 1 && st[0].LastError == "" {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("route never sent: %+v", st)
		case <-tick.C:
		}
	}
	fmt.Println("ANNOUNCED")
	switch mode {
	case "graceful":
		return sp.Stop(ctx, true)
	case "serve":
		_, _ = io.Copy(io.Discard, os.Stdin) // returns at EOF: the test tells us to stop
	}
	return sp.Stop(ctx, false)
}

type helperProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{} // closed when the process has exited
	err   error         // cmd.Wait's result, valid after done
}

// startHelper re-executes the test binary as a speaker and waits for ANNOUNCED.
func startHelper(t *testing.T, mode string, port uint16, restarting bool) *helperProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	r := "0"
	if restarting {
		r = "1"
	}
	cmd.Env = append(os.Environ(), envHelperMode+"="+mode, envHelperPort+"="+strconv.Itoa(int(port)), envRestarting+"="+r)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper speaker: %v", err)
	}
	h := &helperProc{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	announced := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "ANNOUNCED" {
				close(announced)
			}
		}
		h.err = cmd.Wait()
		close(h.done)
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		select {
		case <-h.done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill() // our own child, by PID
			<-h.done
		}
	})
	select {
	case <-announced:
	case <-h.done:
		t.Fatalf("helper speaker exited before announcing: %v", h.err)
	case <-time.After(waitFor):
		t.Fatal("helper speaker did not announce in time")
	}
	return h
}

func (h *helperProc) wait(t *testing.T) {
	t.Helper()
	select {
	case <-h.done:
		if h.err != nil {
			t.Fatalf("helper speaker: %v", h.err)
		}
	case <-time.After(waitFor):
		t.Fatal("helper speaker did not exit")
	}
}

// TestStopHardWithdraws: Stop(false) sends a Cease; the peer drops our route at once
// even though graceful restart was negotiated.
func TestStopHardWithdraws(t *testing.T) {
	peer := newTestPeerGR(t, routerASN, "198.18.0.1", "127.0.0.1", "127.0.0.1", nodeASN, true)
	h := startHelper(t, "hard", peer.port, false)
	h.wait(t)
	poll.Eventually(t, waitFor, every, "route withdrawn after a hard stop", func() string {
		if _, ok := peer.lookup(t, restartVIP); ok {
			return "still in RIB"
		}
		return ""
	})
}

// TestGracefulRestartKeepsRoutes: Stop(true) + process exit leaves the route at the GR
// helper (stale, never removed); the restarted speaker (Restarting) refreshes it and the
// route is never missing in between.
func TestGracefulRestartKeepsRoutes(t *testing.T) {
	peer := newTestPeerGR(t, routerASN, "198.18.0.1", "127.0.0.1", "127.0.0.1", nodeASN, true)
	first := startHelper(t, "graceful", peer.port, false)
	first.wait(t)

	missing := 0
	check := func() (ribPath, bool) {
		p, ok := peer.lookup(t, restartVIP)
		if !ok {
			missing++
		}
		return p, ok
	}
	poll.Eventually(t, waitFor, every, "route kept as stale after the speaker exited", func() string {
		p, ok := check()
		if !ok || !p.stale {
			return fmt.Sprintf("present=%t stale=%t", ok, p.stale)
		}
		return ""
	})

	second := startHelper(t, "serve", peer.port, true)
	poll.Eventually(t, waitFor, every, "route refreshed (not stale) by the restarted speaker", func() string {
		p, ok := check()
		if !ok || p.stale {
			return fmt.Sprintf("present=%t stale=%t", ok, p.stale)
		}
		return ""
	})
	if missing > 0 {
		t.Errorf("route was missing from the helper's RIB in %d polls during the restart", missing)
	}
	_ = second.stdin.Close()
	second.wait(t)
}
