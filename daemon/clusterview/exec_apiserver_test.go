//go:build apiserver

package clusterview

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// kubeletExec is the exec endpoint of a kubelet (/exec/{namespace}/{pod}/{container}),
// served by the CRI streaming library kubelets use, running the command as a local
// process with bin as argv[0] instead of in a container.
type kubeletExec struct {
	bin string
}

func (k kubeletExec) ExecInContainer(ctx context.Context, _, _, _ string, cmd []string, _ io.Reader, out, errOut io.WriteCloser,
	_ bool, _ <-chan remotecommand.TerminalSize, _ time.Duration) error {
	c := exec.CommandContext(ctx, k.bin, cmd[1:]...)
	c.Stdout, c.Stderr = out, errOut
	err := c.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &utilexec.ExitErrorWrapper{ExitError: ee} // the streaming server reports its code
	}
	return err
}

func (k kubeletExec) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	parts := strings.Split(strings.TrimPrefix(req.URL.Path, "/"), "/") // exec, namespace, pod, container
	if len(parts) != 4 || parts[0] != "exec" {
		http.NotFound(w, req)
		return
	}
	opts, err := remotecommand.NewOptions(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	remotecommand.ServeExec(w, req, k, parts[2], "", parts[3], req.URL.Query()["command"], opts, time.Minute, 30*time.Second,
		// What a kubelet offers over SPDY (the API server translates the client's WebSocket).
		[]string{remotecommand.StreamProtocolV4Name, remotecommand.StreamProtocolV3Name, remotecommand.StreamProtocolV2Name, remotecommand.StreamProtocolV1Name})
}

// testNodeExec runs `node NODE ...` end to end: the API server's pods/exec proxies to a
// kubelet exec endpoint (the CRI streaming server) that runs the real bgplbctl; its
// output comes back and its exit code becomes the command's.
func testNodeExec(t *testing.T, ctx context.Context, kube kubernetes.Interface, run func(t *testing.T, args ...string) (string, int)) {
	bgplbctl := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", bgplbctl+"/", "github.com/bgplb/bgplb/daemon/cmd/bgplbctl").CombinedOutput(); err != nil {
		t.Fatalf("go build bgplbctl: %v\n%s", err, out)
	}
	srv := httptest.NewUnstartedServer(kubeletExec{bin: bgplbctl + "/bgplbctl"})
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	defer srv.Close()
	_, portStr, _ := net.SplitHostPort(srv.Listener.Addr().String()) // an httptest listener address
	port, _ := strconv.Atoi(portStr)

	node := must(kube.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node4"}}, metav1.CreateOptions{}))
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(port)
	must(kube.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}))
	pod := must(kube.CoreV1().Pods("bgplb-system").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "bgplbd-node4", Labels: map[string]string{"app.kubernetes.io/component": "bgplbd"}},
		Spec:       corev1.PodSpec{NodeName: "node4", Containers: []corev1.Container{{Name: "bgplbd", Image: "bgplb"}}},
	}, metav1.CreateOptions{}))
	pod.Status.Phase = corev1.PodRunning
	must(kube.CoreV1().Pods("bgplb-system").UpdateStatus(ctx, pod, metav1.UpdateOptions{}))

	out, code := run(t, "node", "node4", "--version")
	if code != ExitOK || !strings.Contains(out, "bgplbctl version") {
		t.Fatalf("node node4 --version: exit %d, output %q", code, out)
	}
	// A node doctor with nothing to check against fails (2), and says why, as JSON.
	dir := t.TempDir()
	out, code = run(t, "node", "node4", "doctor", "-o", "json", "--socket", dir+"/none.sock", "--bpf-pin-dir", dir+"/pins",
		"--cni-conf-dir", dir+"/net.d", "--kubeconfig", dir+"/none", "--node-name", "node4")
	if code != ExitFailures {
		t.Errorf("node node4 doctor: exit %d, want %d\n%s", code, ExitFailures, out)
	}
	var r Report
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Kind != "DoctorReport" || r.Failures == 0 {
		t.Errorf("node node4 doctor -o json: %v\n%s", err, out)
	}
	t.Logf("node node4 doctor through pods/exec: exit %d, %d failure(s), %d warning(s)", code, r.Failures, r.Warnings)
}
