package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// DaemonStoppedLabel on a Node keeps bgplbd's DaemonSet off it: the lab's install
// overlay gives the DaemonSet a node affinity requiring its absence, so setting it is
// how a real node's bgplbd stays down (SignalDaemon with restart false).
const DaemonStoppedLabel = "bgplb.io/lab-daemon-stopped"

// daemonPod returns the bgplbd pod on node that is not being deleted, if any.
func (l *Lab) daemonPod(ctx context.Context, node string) (*corev1.Pod, error) {
	cs, err := l.Clientset()
	if err != nil {
		return nil, err
	}
	pods, err := cs.CoreV1().Pods(DaemonNamespace).List(ctx, metav1.ListOptions{
		LabelSelector: "app.kubernetes.io/component=bgplbd", FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		return nil, fmt.Errorf("list bgplbd pods on %s: %w", node, err)
	}
	for i := range pods.Items {
		if pods.Items[i].DeletionTimestamp == nil {
			return &pods.Items[i], nil
		}
	}
	return nil, nil
}

// containerPIDs returns the processes of container id (its cgroup below the node's
// kubelet cgroup root).
func containerPIDs(n Node, id string) []int {
	var dirs []string
	for _, d := range nodeCgroupDirs(n) {
		if filepath.Base(d) == id {
			dirs = append(dirs, d)
		}
	}
	return pidsInCgroups(dirs)
}

// nodeCgroupDirs returns the cgroup directories below n's kubelet cgroup root.
func nodeCgroupDirs(n Node) []string {
	var dirs []string
	for _, d := range labCgroupDirs() {
		if strings.Contains(d, "/"+nodeCgroup(n)+"/") {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// signalDaemonPod is SignalDaemon on a real node. sig reaches bgplbd's container: SIGKILL
// is sent to its processes directly (a crash), any other signal by deleting the pod
// (the kubelet sends SIGTERM). With restart it returns once the old pod is gone and the
// DaemonSet has made its replacement (not yet Ready); without, the node is labelled
// DaemonStoppedLabel so that none replaces it.
//
// While the API server is paused (PauseAPIServer) no pod can be deleted, listed or
// labelled: a restart then signals bgplbd's process on the node and the kubelet, which
// needs no API server for it, restarts the container (restartContainer); keeping it
// down is refused.
func (l *Lab) signalDaemonPod(ctx context.Context, node string, sig syscall.Signal, restart bool) error {
	n, ok := l.Node(node)
	if !ok {
		return fmt.Errorf("signal bgplbd: no lab node %q", node)
	}
	if paused, err := l.apiServerPaused(); err != nil {
		return err
	} else if paused {
		if !restart {
			return fmt.Errorf("stop bgplbd on %s: the API server is paused, and only a node label (through it) keeps the DaemonSet's pod away", node)
		}
		return restartContainer(ctx, n, sig)
	}
	cs, err := l.Clientset()
	if err != nil {
		return err
	}
	stopped := ""
	if !restart {
		stopped = "true"
	}
	old, err := l.daemonPod(ctx, node)
	if err != nil {
		return err
	}
	if old != nil {
		if sig == syscall.SIGKILL {
			for _, cst := range old.Status.ContainerStatuses {
				_, id, _ := strings.Cut(cst.ContainerID, "://")
				for _, pid := range containerPIDs(n, id) {
					_ = syscall.Kill(pid, syscall.SIGKILL) // best effort: it may be gone
				}
			}
		}
		if restart {
			// Delete it as `kubectl delete pod` does; after a SIGKILL nothing is left
			// to wait for.
			opts := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &old.UID}}
			if sig == syscall.SIGKILL {
				opts.GracePeriodSeconds = ptr.To[int64](0)
			}
			if err := cs.CoreV1().Pods(DaemonNamespace).Delete(ctx, old.Name, opts); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("delete bgplbd pod %s on %s: %w", old.Name, node, err)
			}
		}
	}
	if err := l.labelNode(ctx, node, stopped); err != nil {
		return err
	}
	var last string
	err = poll(ctx, 120*time.Second, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		pods, err := cs.CoreV1().Pods(DaemonNamespace).List(ctx, metav1.ListOptions{
			LabelSelector: "app.kubernetes.io/component=bgplbd", FieldSelector: "spec.nodeName=" + node})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		var fresh, others int
		for _, p := range pods.Items {
			if (old != nil && p.UID == old.UID) || p.DeletionTimestamp != nil {
				others++
			} else {
				fresh++
			}
		}
		last = fmt.Sprintf("%d new pods, %d old or terminating", fresh, others)
		if !restart {
			return len(pods.Items) == 0, nil
		}
		// Started again, as the lab-kubelet mode returns once bgplbd is started: the
		// caller watches it come up (WaitDaemonSet waits for Ready).
		return fresh == 1 && others == 0, nil
	})
	if err != nil {
		return fmt.Errorf("wait for bgplbd's pod on %s (restart %v: %s): %w", node, restart, last, err)
	}
	return nil
}

// labelNode sets (value not empty) or removes DaemonStoppedLabel on node.
func (l *Lab) labelNode(ctx context.Context, node, value string) error {
	cs, err := l.Clientset()
	if err != nil {
		return err
	}
	v := "null"
	if value != "" {
		v = fmt.Sprintf("%q", value)
	}
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%s}}}`, DaemonStoppedLabel, v)
	if _, err := cs.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("label node %s: %w", node, err)
	}
	return nil
}

// restartContainer sends sig to bgplbd's process in the DaemonSet's container on n (found
// in n's kubelet cgroups: a bgplbd with --mode=node) and waits until the kubelet has
// started the container again (a new such process), without the API server.
func restartContainer(ctx context.Context, n Node, sig syscall.Signal) error {
	old := nodeDaemonPIDs(n)
	if len(old) == 0 {
		return fmt.Errorf("restart bgplbd on %s: no bgplbd --mode=node process in the node's cgroups", n.Name)
	}
	for _, pid := range old {
		if err := syscall.Kill(pid, sig); err != nil {
			return fmt.Errorf("signal bgplbd (pid %d) on %s: %w", pid, n.Name, err)
		}
	}
	err := poll(ctx, 60*time.Second, 100*time.Millisecond, func(context.Context) (bool, error) {
		for _, pid := range nodeDaemonPIDs(n) {
			if !slices.Contains(old, pid) {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("wait for the kubelet to restart bgplbd on %s (old pids %v): %w", n.Name, old, err)
	}
	return nil
}

// nodeDaemonPIDs returns the bgplbd processes running as the node daemon (--mode=node)
// in n's kubelet cgroups; the allocator's bgplbd (--mode=allocator) is left out.
func nodeDaemonPIDs(n Node) []int {
	var out []int
	for _, pid := range pidsInCgroups(nodeCgroupDirs(n)) {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue // gone
		}
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if filepath.Base(args[0]) == "bgplbd" && slices.Contains(args, "--mode=node") {
			out = append(out, pid)
		}
	}
	return out
}
