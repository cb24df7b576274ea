package kubelet

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/internal/poll"
)

// startKubelet runs the kubelet against client until the returned stop is called.
func startKubelet(t *testing.T, cfg Config, client *fake.Clientset) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), testLogger(t)))
	done := make(chan error, 1)
	go func() { done <- runWith(ctx, cfg, client, nil) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("kubelet returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("kubelet did not stop within 10s")
		}
	}
	t.Cleanup(stop)
	return stop
}

func getPod(t *testing.T, client *fake.Clientset, name string) (*corev1.Pod, bool) {
	t.Helper()
	p, err := client.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return p, true
}

func postReady(t *testing.T, port int, v string) {
	t.Helper()
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/ready", port), "text/plain", strings.NewReader(v))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// TestRunHostNetworkPod drives Run's whole pod life cycle against a fake API
// server with a host-network pod (no namespace or CNI needed, so no root):
// node registration, Running/Ready status, readiness following /ready, a
// kubelet restart adopting the pod, and graceful deletion.
func TestRunHostNetworkPod(t *testing.T) {
	bin := buildPodserver(t)
	port := freeTCPPort(t)
	stateDir := t.TempDir()
	cfg := Config{
		NodeName:      "node1",
		NodeIPs:       []netip.Addr{netip.MustParseAddr("127.0.0.1")},
		PodCIDRs:      []netip.Prefix{netip.MustParsePrefix("198.19.1.0/24")},
		CNIConfDir:    t.TempDir(),
		CNIBinDir:     t.TempDir(),
		CNICacheDir:   t.TempDir(),
		StateDir:      stateDir,
		PodserverPath: bin,
	}
	// The node exists already with the taint the API server's admission adds.
	client := fake.NewClientset(&corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node1"},
		Spec:       corev1.NodeSpec{Taints: []corev1.Taint{{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule}}},
	})
	stop := startKubelet(t, cfg, client)
	ctx := context.Background()

	poll.Eventually(t, 10*time.Second, every, "node registered and ready", func() bool {
		n, err := client.CoreV1().Nodes().Get(ctx, "node1", metav1.GetOptions{})
		if err != nil || len(n.Spec.Taints) != 0 || n.Spec.PodCIDR != "198.19.1.0/24" || n.Labels[corev1.LabelHostname] != "node1" {
			return false
		}
		ready := false
		for _, c := range n.Status.Conditions {
			ready = ready || c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue
		}
		return ready && len(n.Status.Addresses) == 2 && n.Status.Addresses[0].Address == "127.0.0.1" &&
			n.Status.Allocatable.Pods().Value() == 110
	})
	poll.Eventually(t, 5*time.Second, every, "node lease held", func() bool {
		lease, err := client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, "node1", metav1.GetOptions{})
		return err == nil && lease.Spec.RenewTime != nil && ptr.Deref(lease.Spec.HolderIdentity, "") == "node1" &&
			ptr.Deref(lease.Spec.LeaseDurationSeconds, 0) == leaseDuration
	})

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "hostnet", UID: "3c9d8e7f-0a1b-4c2d-8e3f-405162738495"},
		Spec: corev1.PodSpec{
			NodeName:    "node1",
			HostNetwork: true,
			Containers: []corev1.Container{{Name: "app", Image: "bgplb.io/podserver", Ports: []corev1.ContainerPort{{ContainerPort: int32(port)}},
				Env: []corev1.EnvVar{{Name: "SHUTDOWN_DELAY", Value: "2"}}}},
		},
	}
	if _, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 10*time.Second, every, "pod Running and Ready", func() bool {
		p, ok := getPod(t, client, "hostnet")
		return ok && p.Status.Phase == corev1.PodRunning && isReady(p) && p.Status.PodIP == "127.0.0.1" && p.Status.HostIP == "127.0.0.1" &&
			len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].Ready && p.Status.StartTime != nil
	})
	pid, err := stateStore{Dir: filepath.Join(stateDir, "pods")}.readPID(pod.UID)
	if err != nil || pid == 0 {
		t.Fatalf("PID file: %d %v", pid, err)
	}

	// Readiness follows /ready: false within the probe threshold, then back.
	postReady(t, port, "false")
	flipped := time.Now()
	poll.Eventually(t, 5*time.Second, every, "pod not Ready after POST /ready false", func() bool {
		p, _ := getPod(t, client, "hostnet")
		return p != nil && !isReady(p)
	})
	// Three failed probes 500 ms apart span at least 1 s; the first may have
	// started just before postReady returned, hence the margin.
	if d := time.Since(flipped); d < 800*time.Millisecond {
		t.Errorf("Ready fell after %s, before 3 failed probes could have run", d)
	}
	postReady(t, port, "true")
	poll.Eventually(t, 3*time.Second, every, "pod Ready again", func() bool {
		p, _ := getPod(t, client, "hostnet")
		return p != nil && isReady(p)
	})

	// A restarted kubelet adopts the running process.
	stop()
	if !procMatches(pid, bin, "hostnet") {
		t.Fatal("pod process did not survive the kubelet stopping")
	}
	startKubelet(t, cfg, client)
	// Several probe periods: the adopted pod must stay as it is.
	poll.Consistently(t, 2*time.Second, 200*time.Millisecond, "adopted pod Ready, not restarted", func() string {
		p, _ := getPod(t, client, "hostnet")
		if p == nil || !isReady(p) || p.Status.ContainerStatuses[0].RestartCount != 0 {
			return fmt.Sprintf("pod after kubelet restart = %+v", p)
		}
		return ""
	})
	p, _ := getPod(t, client, "hostnet")
	if got, _ := (stateStore{Dir: filepath.Join(stateDir, "pods")}).readPID(pod.UID); got != pid {
		t.Fatalf("PID after restart = %d, want the adopted %d", got, pid)
	}

	// Graceful deletion: SIGTERM, not Ready while still serving, then gone.
	p.DeletionTimestamp = ptr.To(metav1.Now())
	p.DeletionGracePeriodSeconds = ptr.To[int64](30)
	if _, err := client.CoreV1().Pods("default").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	poll.Eventually(t, 5*time.Second, every, "terminating pod not Ready", func() bool {
		p, ok := getPod(t, client, "hostnet")
		return ok && !isReady(p)
	})
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/hostname", port))
	if err != nil {
		t.Errorf("terminating pod stopped serving before its shutdown delay: %v", err)
	} else {
		resp.Body.Close()
	}
	poll.Eventually(t, 10*time.Second, every, "pod object deleted", func() bool {
		_, ok := getPod(t, client, "hostnet")
		return !ok
	})
	if d := time.Since(deleted); d < 2*time.Second || d > 8*time.Second {
		t.Errorf("pod deleted %s after the deletion request, want after its 2s shutdown delay and well before the 30s grace", d)
	}
	if procMatches(pid, bin, "hostnet") {
		t.Error("pod process still runs after the pod was deleted")
	}
	entries, err := os.ReadDir(filepath.Join(stateDir, "pods"))
	if err != nil || len(entries) != 0 {
		t.Errorf("pod state left behind: %v %v", entries, err)
	}
}

// TestRunRestartDuringTermination: a kubelet restarted while a pod is in its
// grace period continues the termination without signalling the process again
// (the podserver, like many apps, exits at once on a second signal).
func TestRunRestartDuringTermination(t *testing.T) {
	bin := buildPodserver(t)
	port := freeTCPPort(t)
	stateDir := t.TempDir()
	cfg := Config{
		NodeName: "node1", NodeIPs: []netip.Addr{netip.MustParseAddr("127.0.0.1")},
		CNIConfDir: t.TempDir(), CNIBinDir: t.TempDir(), CNICacheDir: t.TempDir(), StateDir: stateDir, PodserverPath: bin,
	}
	client := fake.NewClientset()
	stop := startKubelet(t, cfg, client)
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "slow-stop", UID: "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"},
		Spec: corev1.PodSpec{NodeName: "node1", HostNetwork: true, Containers: []corev1.Container{{
			Name: "app", Image: "x", Ports: []corev1.ContainerPort{{ContainerPort: int32(port)}},
			Env: []corev1.EnvVar{{Name: "SHUTDOWN_DELAY", Value: "5"}},
		}}},
	}
	if _, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 10*time.Second, every, "pod Ready", func() bool {
		p, ok := getPod(t, client, "slow-stop")
		return ok && isReady(p)
	})
	p, _ := getPod(t, client, "slow-stop")
	p.DeletionTimestamp = ptr.To(metav1.Now())
	p.DeletionGracePeriodSeconds = ptr.To[int64](30)
	if _, err := client.CoreV1().Pods("default").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	poll.Eventually(t, 5*time.Second, every, "terminating pod not Ready", func() bool {
		p, ok := getPod(t, client, "slow-stop")
		return ok && !isReady(p)
	})
	stop()
	startKubelet(t, cfg, client)
	poll.Eventually(t, 15*time.Second, every, "pod object deleted", func() bool {
		_, ok := getPod(t, client, "slow-stop")
		return !ok
	})
	if d := time.Since(deleted); d < 4500*time.Millisecond {
		t.Errorf("pod deleted %s after the deletion request: the restarted kubelet cut its 5s shutdown delay short", d)
	}
	entries, err := os.ReadDir(filepath.Join(stateDir, "pods"))
	if err != nil || len(entries) != 0 {
		t.Errorf("pod state left behind: %v %v", entries, err)
	}
}
