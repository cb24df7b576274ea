//go:build lab

package lab_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/bgplb/bgplb/conformance/lab"
	"github.com/bgplb/bgplb/internal/poll"
)

// every is how often the tests poll.
const every = 200 * time.Millisecond

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "speaker" {
		os.Exit(runSpeakerHelper())
	}
	os.Exit(m.Run())
}

// labOptions returns Options for a test lab from BGPLB_BIN_DIR and BGPLB_K8S_BIN_DIR.
// Missing binaries fail the test: they are part of what is tested.
func labOptions(t *testing.T, dir string) lab.Options {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the lab needs root (network namespaces, FRR, bpffs)")
	}
	bin, k8s := os.Getenv("BGPLB_BIN_DIR"), os.Getenv("BGPLB_K8S_BIN_DIR")
	if bin == "" || k8s == "" {
		t.Fatal("set BGPLB_BIN_DIR (bgplb-lab, podserver) and BGPLB_K8S_BIN_DIR (kube-*, CNI plugins); `make test` does")
	}
	for _, p := range []string{filepath.Join(bin, "bgplb-lab"), filepath.Join(bin, "podserver"),
		filepath.Join(k8s, "kube-apiserver"), filepath.Join(k8s, "ptp")} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("missing binary: %v", err)
		}
	}
	// NoDaemon: these tests cover the lab itself; the BGP test's own speaker peers from
	// node1's address, where a running bgplbd would hold the session.
	return lab.Options{Dir: dir, Nodes: 3, BinDir: bin, K8sBinDir: k8s, NoDaemon: true, Logf: t.Logf}
}

// labDir returns a fresh, not yet existing lab dir under /run (FRR, running as the frr
// user, must be able to enter it; t.TempDir's 0700 parents do not allow that).
func labDir(t *testing.T) string {
	t.Helper()
	parent, err := os.MkdirTemp("/run", "bgplb-lab-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	return filepath.Join(parent, "lab")
}

// TestUpFailsFastWhenPortInUse is acceptance 6: with 127.0.0.1:16443 taken, up fails
// within seconds, names the port and leaves nothing behind.
func TestUpFailsFastWhenPortInUse(t *testing.T) {
	dir := labDir(t)
	opts := labOptions(t, dir)
	if nss, _ := lab.LabNetns(); len(nss) > 0 {
		t.Fatalf("lab namespaces exist before the test (another lab is up?): %v", nss)
	}
	ln, err := net.Listen("tcp", lab.ForwardAddr)
	if err != nil {
		t.Fatalf("occupy %s: %v", lab.ForwardAddr, err)
	}
	defer ln.Close()
	start := time.Now()
	l, err := lab.Up(context.Background(), opts)
	took := time.Since(start)
	if err == nil {
		_ = lab.Down(dir)
		t.Fatalf("Up succeeded with %s in use: %+v", lab.ForwardAddr, l)
	}
	t.Logf("Up failed after %s: %v", took, err)
	if took > 5*time.Second {
		t.Errorf("Up took %s to fail, want < 5s", took)
	}
	if !strings.Contains(err.Error(), lab.ForwardAddr) || !strings.Contains(err.Error(), "in use") {
		t.Errorf("error does not say that %s is in use: %v", lab.ForwardAddr, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lab dir %s left behind (stat: %v)", dir, err)
	}
	if nss, _ := lab.LabNetns(); len(nss) > 0 {
		t.Errorf("namespaces left behind: %v", nss)
	}
}

// TestUpFailsFastOnBadInput is acceptance 6 for a missing binary and for a caller that
// is not root: up fails within seconds with a message saying what to do, nothing left.
func TestUpFailsFastOnBadInput(t *testing.T) {
	dir := labDir(t)
	opts := labOptions(t, dir)

	t.Run("MissingK8sBinaries", func(t *testing.T) {
		o := opts
		o.K8sBinDir = t.TempDir()
		start := time.Now()
		_, err := lab.Up(context.Background(), o)
		if err == nil {
			_ = lab.Down(dir)
			t.Fatal("Up succeeded without Kubernetes binaries")
		}
		if time.Since(start) > 5*time.Second || !strings.Contains(err.Error(), "make tools") {
			t.Errorf("after %s: %v; want a fast error that says `make tools`", time.Since(start), err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("lab dir left behind (stat: %v)", err)
		}
	})

	t.Run("NotRoot", func(t *testing.T) {
		cmd := exec.Command(filepath.Join(opts.BinDir, "bgplb-lab"), "up", "--dir", dir,
			"--k8s-bin-dir", opts.K8sBinDir, "--bin-dir", opts.BinDir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err == nil {
			_ = lab.Down(dir)
			t.Fatalf("bgplb-lab up as uid 65534 succeeded: %s", out)
		}
		if time.Since(start) > 5*time.Second || !strings.Contains(string(out), "needs root") {
			t.Errorf("after %s: %v: %s; want a fast error that says it needs root", time.Since(start), err, out)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("lab dir left behind (stat: %v)", err)
		}
	})
	if nss, _ := lab.LabNetns(); len(nss) > 0 {
		t.Errorf("namespaces left behind: %v", nss)
	}
}

// TestUpInterruptedLeavesNothing cancels Up while the API server starts (like Ctrl-C
// in a half-finished up): Up fails and tears down what it made.
func TestUpInterruptedLeavesNothing(t *testing.T) {
	dir := labDir(t)
	opts := labOptions(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			if _, err := os.Stat(filepath.Join(dir, "pids", "kube-apiserver.pid")); err == nil {
				cancel()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	_, err := lab.Up(ctx, opts)
	if err == nil {
		_ = lab.Down(dir)
		t.Fatal("Up succeeded although it was cancelled while the API server started")
	}
	t.Logf("interrupted Up: %v", err)
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lab dir left behind (stat: %v)", err)
	}
	if nss, _ := lab.LabNetns(); len(nss) > 0 {
		t.Errorf("namespaces left behind: %v", nss)
	}
	if ln, err := net.Listen("tcp", lab.ForwardAddr); err != nil {
		t.Errorf("forwarder still holds %s: %v", lab.ForwardAddr, err)
	} else {
		ln.Close()
	}
}

// TestLab brings one lab up and runs acceptance 1–3 on it, then 4 (down).
func TestLab(t *testing.T) {
	dir := labDir(t)
	opts := labOptions(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	l, err := lab.Up(ctx, opts)
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	t.Logf("lab up in %s", time.Since(start).Round(100*time.Millisecond))
	downed := false
	t.Cleanup(func() {
		if !downed {
			if err := lab.Down(dir); err != nil {
				t.Errorf("down (cleanup): %v", err)
			}
		}
	})
	cs, err := l.Clientset()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("SecondUpFailsFast", func(t *testing.T) {
		start := time.Now()
		_, err := lab.Up(ctx, opts)
		if !errors.Is(err, lab.ErrAlreadyUp) {
			t.Fatalf("second Up: got %v, want ErrAlreadyUp", err)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("second Up took %s to fail", time.Since(start))
		}
		if _, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err != nil {
			t.Fatalf("the lab broke after a refused second Up: %v", err)
		}
	})

	t.Run("NodeProcessesSeeBPFFS", func(t *testing.T) {
		// Processes in node namespaces (bgplbd, the CNI plugin via the kubelet) pin
		// under /sys/fs/bpf/bgplb-lab/<node>: the mount must be visible there.
		for _, n := range l.Nodes {
			out, err := lab.NetNS(n.Netns).Exec(ctx, "stat", "-f", "-c", "%T", "/sys/fs/bpf/bgplb-lab")
			if err != nil || strings.TrimSpace(string(out)) != "bpf_fs" {
				t.Errorf("%s: /sys/fs/bpf/bgplb-lab is not bpffs: %q %v", n.Netns, out, err)
			}
		}
	})

	var w *workload
	ok := t.Run("WorkloadAndClusterIP", func(t *testing.T) { w = testWorkload(ctx, t, l, cs) })
	if ok {
		t.Run("ReadinessAndTermination", func(t *testing.T) { testReadiness(ctx, t, cs, w) })
	}
	t.Run("BGPToRouterFIB", func(t *testing.T) { testBGP(ctx, t, l, lab.NodeASN) })
	t.Run("Down", func(t *testing.T) { testDown(t, l, &downed) })
}

type workload struct {
	ns, name string
	pods     []corev1.Pod
}

const testNS = "labtest"

func testWorkload(ctx context.Context, t *testing.T, l *lab.Lab, cs kubernetes.Interface) *workload {
	w := &workload{ns: testNS, name: "web"}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: w.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	poll.Eventually(t, 30*time.Second, every, "default ServiceAccount in "+w.ns, func() error {
		_, err := cs.CoreV1().ServiceAccounts(w.ns).Get(ctx, "default", metav1.GetOptions{})
		return err
	})
	labels := map[string]string{"app": w.name}
	replicas := int32(3)
	grace := int64(10)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: w.name, Namespace: w.ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: &grace,
					Containers: []corev1.Container{{
						Name: "web", Image: "bgplb.io/podserver",
						Ports: []corev1.ContainerPort{{ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
						Env:   []corev1.EnvVar{{Name: "SHUTDOWN_DELAY", Value: "3s"}},
					}},
				},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments(w.ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create deployment: %v", err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: w.name, Namespace: w.ns},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}},
		},
	}
	svc, err := cs.CoreV1().Services(w.ns).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create service: %v", err)
	}

	poll.Eventually(t, 90*time.Second, every, "3 pods Running and Ready", func() error {
		pods, err := cs.CoreV1().Pods(w.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + w.name})
		if err != nil {
			return err
		}
		var ready []corev1.Pod
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && podReady(&p) && p.Status.PodIP != "" && p.Spec.NodeName != "" {
				ready = append(ready, p)
			}
		}
		if len(ready) != 3 {
			var states []string
			for _, p := range pods.Items {
				states = append(states, fmt.Sprintf("%s node=%q phase=%s ready=%v ip=%q", p.Name, p.Spec.NodeName, p.Status.Phase, podReady(&p), p.Status.PodIP))
			}
			return fmt.Errorf("%d of %d pods running and ready: %v", len(ready), len(pods.Items), states)
		}
		w.pods = ready
		return nil
	})
	podByIP := map[string]corev1.Pod{}
	for _, p := range w.pods {
		t.Logf("pod %s on %s ip %s", p.Name, p.Spec.NodeName, p.Status.PodIP)
		if _, ok := l.Node(p.Spec.NodeName); !ok {
			t.Errorf("pod %s on unknown node %q", p.Name, p.Spec.NodeName)
		}
		podByIP[p.Status.PodIP] = p
	}

	poll.Eventually(t, 30*time.Second, every, "EndpointSlice with 3 ready endpoints and nodeNames", func() error {
		eps := endpoints(ctx, cs, w.ns, w.name)
		if len(eps) != 3 {
			return fmt.Errorf("%d endpoints, want 3: %+v", len(eps), eps)
		}
		for _, ep := range eps {
			p, ok := podByIP[ep.Addresses[0]]
			if !ok {
				return fmt.Errorf("endpoint %s is not a ready pod's IP", ep.Addresses[0])
			}
			if ep.Conditions.Ready == nil || !*ep.Conditions.Ready {
				return fmt.Errorf("endpoint %s not ready", ep.Addresses[0])
			}
			if ep.NodeName == nil || *ep.NodeName != p.Spec.NodeName {
				return fmt.Errorf("endpoint %s nodeName %v, want %s", ep.Addresses[0], ep.NodeName, p.Spec.NodeName)
			}
		}
		return nil
	})

	client := lab.NetNS(lab.ClientNS).HTTPClient(3 * time.Second)
	for _, p := range w.pods {
		base := "http://" + net.JoinHostPort(p.Status.PodIP, "8080")
		if got := get(t, client, base+"/clientip"); got != lab.ClientV4.String() {
			t.Errorf("%s/clientip from the client = %q, want %s", base, got, lab.ClientV4)
		}
		if got := get(t, client, base+"/hostname"); got != p.Name {
			t.Errorf("%s/hostname = %q, want pod name %s", base, got, p.Name)
		}
	}

	// ClusterIP through kube-proxy, from every node namespace, until every pod answered.
	for _, n := range l.Nodes {
		nc := lab.NetNS(n.Netns).HTTPClient(2 * time.Second)
		url := "http://" + net.JoinHostPort(svc.Spec.ClusterIP, "80") + "/hostname"
		seen := map[string]bool{}
		poll.Eventually(t, 30*time.Second, every, "ClusterIP "+svc.Spec.ClusterIP+" from "+n.Netns+" reaches all pods", func() error {
			got, err := tryGet(nc, url)
			if err != nil {
				return err
			}
			seen[got] = true
			for _, p := range w.pods {
				if !seen[p.Name] {
					return fmt.Errorf("seen %v so far", seen)
				}
			}
			return nil
		})
	}
	return w
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// endpoints returns the endpoints of all EndpointSlices of a Service.
func endpoints(ctx context.Context, cs kubernetes.Interface, ns, svc string) []discoveryv1.Endpoint {
	list, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
	if err != nil {
		return nil
	}
	var out []discoveryv1.Endpoint
	for _, s := range list.Items {
		out = append(out, s.Endpoints...)
	}
	return out
}

func tryGet(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return strings.TrimSpace(string(b)), nil
}

func get(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	var got string
	poll.Eventually(t, 10*time.Second, every, "GET "+url, func() error {
		var err error
		got, err = tryGet(c, url)
		return err
	})
	return got
}

// TestLabDualStackIptablesIBGP brings up a 2-node dual-stack lab with kube-proxy in
// iptables mode and the iBGP variant (nodes in the router's AS 64512): pods get an IPv4
// and an IPv6 address, the client reaches both and sees its own address, both ClusterIPs
// of a RequireDualStack Service answer from a node, and an iBGP speaker's route reaches
// the router's FIB.
func TestLabDualStackIptablesIBGP(t *testing.T) {
	dir := labDir(t)
	opts := labOptions(t, dir)
	opts.Nodes, opts.IPv6, opts.ProxyMode, opts.NodeASN = 2, true, "iptables", lab.RouterASN
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l, err := lab.Up(ctx, opts)
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	t.Cleanup(func() {
		if err := lab.Down(dir); err != nil {
			t.Errorf("down: %v", err)
		}
	})
	cs, err := l.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 30*time.Second, every, "default ServiceAccount", func() error {
		_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err
	})
	labels := map[string]string{"app": "ds"}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "ds", Namespace: "default", Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "bgplb.io/podserver",
			Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}},
	}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	policy := corev1.IPFamilyPolicyRequireDualStack
	svc, err := cs.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "ds", Namespace: "default"},
		Spec: corev1.ServiceSpec{Selector: labels, IPFamilyPolicy: &policy,
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create dual-stack service: %v", err)
	}
	if len(svc.Spec.ClusterIPs) != 2 {
		t.Fatalf("service ClusterIPs %v, want one per family", svc.Spec.ClusterIPs)
	}
	var p *corev1.Pod
	poll.Eventually(t, 60*time.Second, every, "pod Running and Ready with two IPs", func() error {
		got, err := cs.CoreV1().Pods("default").Get(ctx, "ds", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !podReady(got) || len(got.Status.PodIPs) != 2 {
			return fmt.Errorf("phase=%s ready=%v ips=%v", got.Status.Phase, podReady(got), got.Status.PodIPs)
		}
		p = got
		return nil
	})
	client := lab.NetNS(lab.ClientNS).HTTPClient(3 * time.Second)
	want := map[bool]string{false: lab.ClientV4.String(), true: lab.ClientV6.String()}
	for _, ip := range p.Status.PodIPs {
		v6 := strings.Contains(ip.IP, ":")
		if got := get(t, client, "http://"+net.JoinHostPort(ip.IP, "8080")+"/clientip"); got != want[v6] {
			t.Errorf("/clientip via %s = %q, want %s", ip.IP, got, want[v6])
		}
	}
	node, _ := l.Node(p.Spec.NodeName)
	other := l.Nodes[0]
	if other.Name == node.Name {
		other = l.Nodes[1]
	}
	nc := lab.NetNS(other.Netns).HTTPClient(2 * time.Second)
	for _, cip := range svc.Spec.ClusterIPs {
		url := "http://" + net.JoinHostPort(cip, "80") + "/hostname"
		poll.Eventually(t, 30*time.Second, every, "ClusterIP "+cip+" from "+other.Netns+" (iptables)", func() error {
			got, err := tryGet(nc, url)
			if err == nil && got != "ds" {
				err = fmt.Errorf("hostname %q, want ds", got)
			}
			return err
		})
	}
	if out, err := lab.NetNS(other.Netns).Exec(ctx, "iptables-save", "-t", "nat"); err != nil || !strings.Contains(string(out), "KUBE-SERVICES") {
		t.Errorf("no kube-proxy iptables rules in %s: %v", other.Netns, err)
	}
	t.Run("IBGPToRouterFIB", func(t *testing.T) { testBGP(ctx, t, l, lab.RouterASN) })
	t.Run("IBGPv6ToRouterFIB", func(t *testing.T) {
		testBGPFamily(ctx, t, l, lab.RouterASN, "2001:db8:ffff::250", l.Nodes[0].IPs[1].String(), lab.RouterFabricV6.String())
	})
}
