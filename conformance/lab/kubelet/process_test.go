package kubelet

import (
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// buildPodserver compiles conformance/podserver into a temporary directory.
func buildPodserver(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "podserver")
	cmd := exec.Command("go", "build", "-o", bin, "../../podserver")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build podserver: %v\n%s", err, out)
	}
	return bin
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestProcessLifecycle starts a real podserver the way the kubelet does
// (without a namespace), probes it, adopts it by PID and stops it gracefully.
func TestProcessLifecycle(t *testing.T) {
	bin := buildPodserver(t)
	port := freeTCPPort(t)
	logPath := filepath.Join(t.TempDir(), "pod.log")
	spec := processSpec{Podserver: bin, Name: "lifecycle-pod", TCP: []int{port},
		Env: []string{"PATH=" + os.Getenv("PATH"), "SHUTDOWN_DELAY=700ms"}, LogPath: logPath}
	proc, err := startProcess(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := proc.kill(); err != nil {
			t.Error(err)
		}
	})
	ctx := context.Background()
	pr := newProber()
	lo := netip.MustParseAddr("127.0.0.1")
	eventually(t, 10*time.Second, "podserver answers", func() bool {
		res, _ := pr.probe(ctx, lo, port)
		return res.answered
	})
	if res, err := pr.probe(ctx, lo, port); !res.ok || err != nil {
		t.Fatalf("probe = %+v %v, want ok", res, err)
	}
	if !proc.alive() {
		t.Fatal("started process not alive")
	}
	if sid, err := unix.Getsid(proc.pid); err != nil || sid != proc.pid {
		t.Errorf("session of pod process = %d (%v), want its own (%d)", sid, err, proc.pid)
	}

	// Adoption checks the command line: right name adopts, wrong name does not.
	if _, ok := adoptProcess(proc.pid, bin, "lifecycle-pod"); !ok {
		t.Error("adoptProcess did not recognise the running podserver")
	}
	if _, ok := adoptProcess(proc.pid, bin, "other-pod"); ok {
		t.Error("adoptProcess accepted a podserver of another pod")
	}
	if _, ok := adoptProcess(os.Getpid(), bin, "lifecycle-pod"); ok {
		t.Error("adoptProcess accepted an unrelated process")
	}

	// Graceful stop: not ready while still answering, then gone.
	adopted, _ := adoptProcess(proc.pid, bin, "lifecycle-pod")
	if err := adopted.signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "probe fails after SIGTERM", func() bool {
		res, err := pr.probe(ctx, lo, port)
		return res.answered && !res.ok && err != nil && strings.Contains(err.Error(), "503")
	})
	if !proc.waitExit(5 * time.Second) {
		t.Fatal("podserver did not exit after SIGTERM and its shutdown delay")
	}
	if proc.alive() || adopted.alive() {
		t.Error("exited process still reported alive")
	}
	if res, err := pr.probe(ctx, lo, port); res.answered || err == nil {
		t.Errorf("probe after exit = %+v %v, want no answer", res, err)
	}
	logs, err := os.ReadFile(logPath)
	if err != nil || !strings.Contains(string(logs), "podserver serving") {
		t.Errorf("process log = %q %v", logs, err)
	}
}
