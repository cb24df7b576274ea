package clusterview

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	"k8s.io/streaming/pkg/httpstream"
)

// PodSelector selects bgplbd's pods (and its DaemonSet), as manifests/base labels them.
const PodSelector = "app.kubernetes.io/component=bgplbd"

// ContainerName is bgplbd's container in its pod.
const ContainerName = "bgplbd"

// NodePod returns the running bgplbd pod on node in namespace.
func NodePod(ctx context.Context, kube kubernetes.Interface, namespace, node string) (*corev1.Pod, error) {
	pods, err := kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{
		LabelSelector: PodSelector,
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("list bgplbd pods on node %s: %w", node, err)
	}
	var running []corev1.Pod
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			running = append(running, p)
		}
	}
	if len(running) == 0 {
		return nil, fmt.Errorf("no running bgplbd pod (%s) on node %s in namespace %s", PodSelector, node, namespace)
	}
	// During a rolling update the newest pod is the one serving.
	slices.SortFunc(running, func(a, b corev1.Pod) int { return b.CreationTimestamp.Compare(a.CreationTimestamp.Time) })
	return &running[0], nil
}

// container returns the name of pod's bgplbd container (its first when none is named so).
func container(pod *corev1.Pod) string {
	for _, c := range pod.Spec.Containers {
		if c.Name == ContainerName {
			return c.Name
		}
	}
	if len(pod.Spec.Containers) > 0 {
		return pod.Spec.Containers[0].Name
	}
	return ContainerName
}

// ExecBgplbctl runs `bgplbctl args...` in the bgplbd container of pod through the API
// server's exec subresource (WebSocket, SPDY when the server does not upgrade to it,
// as kubectl exec does), copying its stdout and stderr. A non-zero exit of the remote
// bgplbctl is returned as an *ExitCodeError with its code.
func ExecBgplbctl(ctx context.Context, cfg *rest.Config, kube kubernetes.Interface, pod *corev1.Pod, args []string, stdout, stderr io.Writer) error {
	req := kube.CoreV1().RESTClient().Post().Resource("pods").Namespace(pod.Namespace).Name(pod.Name).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{
			Container: container(pod),
			Command:   append([]string{"bgplbctl"}, args...),
			Stdout:    true,
			Stderr:    true,
		}, scheme.ParameterCodec)
	spdy, err := remotecommand.NewSPDYExecutor(cfg, "POST", req.URL())
	if err != nil {
		return fmt.Errorf("create spdy executor: %w", err)
	}
	ws, err := remotecommand.NewWebSocketExecutor(cfg, "GET", req.URL().String())
	if err != nil {
		return fmt.Errorf("create websocket executor: %w", err)
	}
	exec, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return fmt.Errorf("create executor: %w", err)
	}
	err = exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: stdout, Stderr: stderr})
	var code utilexec.ExitError
	if errors.As(err, &code) && code.Exited() {
		return &ExitCodeError{Code: code.ExitStatus(), Err: fmt.Errorf("bgplbctl %s in pod %s/%s exited with %d", strings.Join(args, " "), pod.Namespace, pod.Name, code.ExitStatus())}
	}
	if err != nil {
		return fmt.Errorf("exec bgplbctl in pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}
