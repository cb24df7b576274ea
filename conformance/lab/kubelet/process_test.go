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
	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/bgplb/bgplb/internal/poll"
)

// every is how often the tests poll.
const every = 50 * time.Millisecond

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
	poll.Eventually(t, 10*time.Second, every, "podserver answers", func() bool {
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
	poll.Eventually(t, 2*time.Second, every, "probe fails after SIGTERM", func() bool {
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

// TestAdopt checks what a restarted kubelet does with a previous run's pod:
// a live process in a live (here: the host) namespace is kept; a live process
// whose namespace is gone is stopped and the network marked for re-setup.
func TestAdopt(t *testing.T) {
	bin := buildPodserver(t)
	store := stateStore{Dir: t.TempDir()}
	k := &kubelet{cfg: Config{PodserverPath: bin}, store: store}
	start := func(name string) *process {
		t.Helper()
		proc, err := startProcess(processSpec{Podserver: bin, Name: name, TCP: []int{freeTCPPort(t)},
			Env: []string{"PATH=" + os.Getenv("PATH")}, LogPath: filepath.Join(t.TempDir(), "log")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = proc.kill() })
		poll.Eventually(t, 5*time.Second, every, "process running", func() bool { return procMatches(proc.pid, bin, name) })
		return proc
	}
	pod := testPod()
	pod.Status.Phase = corev1.PodRunning
	pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue})

	// Host-network pod with a live process: adopted, readiness taken from the API.
	live := start("web-1")
	rec := podRecord{UID: "u-live", Namespace: "ns1", Name: "web-1", IPs: []netip.Addr{netip.MustParseAddr("198.18.0.11")}}
	if err := store.writePID(rec.UID, live.pid, bin); err != nil {
		t.Fatal(err)
	}
	w := &podWorker{k: k, uid: rec.UID, logger: testLogger(t)}
	w.adopt(rec, pod)
	if w.proc == nil || w.proc.pid != live.pid || !w.running || !w.ready.ready || w.netLost || w.port != 8080 || w.probeIP.String() != "198.18.0.11" {
		t.Fatalf("adopted worker = proc %v running %v ready %v netLost %v probe %s:%d", w.proc, w.running, w.ready.ready, w.netLost, w.probeIP, w.port)
	}

	// Same record but the recorded PID now belongs to another pod's server: not adopted.
	other := start("someone-else")
	if err := store.writePID(rec.UID, other.pid, bin); err != nil {
		t.Fatal(err)
	}
	w = &podWorker{k: k, uid: rec.UID, logger: testLogger(t)}
	w.adopt(rec, pod)
	if w.proc != nil {
		t.Errorf("adopted another pod's process %d", other.pid)
	}

	// The namespace is gone: the process is stopped, the network will be redone.
	lost := start("web-1")
	recLost := podRecord{UID: "u-lost", Namespace: "ns1", Name: "web-1", Netns: "bgplb-kt-missing-netns"}
	if err := store.writePID(recLost.UID, lost.pid, bin); err != nil {
		t.Fatal(err)
	}
	w = &podWorker{k: k, uid: recLost.UID, logger: testLogger(t)}
	w.adopt(recLost, pod)
	if w.proc != nil || !w.netLost {
		t.Errorf("worker with a lost namespace: proc %v netLost %v", w.proc, w.netLost)
	}
	if !lost.waitExit(5 * time.Second) {
		t.Error("process of the lost namespace still runs")
	}
}

func testLogger(t *testing.T) klog.Logger {
	return klog.Background().WithValues("test", t.Name())
}
