package lab

import (
	"context"
	"fmt"
	"path/filepath"
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
	for _, d := range labCgroupDirs() {
		if filepath.Base(d) == id && strings.Contains(d, "/"+nodeCgroup(n)+"/") {
			dirs = append(dirs, d)
		}
	}
	return pidsInCgroups(dirs)
}

// signalDaemonPod is SignalDaemon on a real node. sig reaches bgplbd's container: SIGKILL
// is sent to its processes directly (a crash), any other signal by deleting the pod
// (the kubelet sends SIGTERM). With restart the DaemonSet's replacement pod must be
// Ready; without, the node is labelled DaemonStoppedLabel so that none replaces it.
func (l *Lab) signalDaemonPod(ctx context.Context, node string, sig syscall.Signal, restart bool) error {
	n, ok := l.Node(node)
	if !ok {
		return fmt.Errorf("signal bgplbd: no lab node %q", node)
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
		var ready, others int
		for _, p := range pods.Items {
			switch {
			case old != nil && p.UID == old.UID, p.DeletionTimestamp != nil:
				others++
			case podReady(&p):
				ready++
			default:
				others++
			}
		}
		last = fmt.Sprintf("%d ready, %d others", ready, others)
		if !restart {
			return len(pods.Items) == 0, nil
		}
		return ready == 1 && others == 0, nil
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

func podReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
