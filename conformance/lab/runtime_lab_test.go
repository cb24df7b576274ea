//go:build lab

package lab_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/conformance/lab"
	"github.com/bgplb/bgplb/conformance/labsuite"
	lbv1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// TestRealNodes brings up two real nodes (containerd + kubelet, bgplb installed from
// manifests/base and the image of `make image image-pause`) and checks: bgplbd runs
// only as DaemonSet pods and has chained the bgplb plugin into each node's conflist;
// pods started by containerd got their endpoint records from the chained plugin and
// serve a VIP through the router; deleting a node's bgplbd pod under load brings a new
// one up with no failed request and no change of the router's route; and Down leaves
// no process, cgroup, mount, namespace or pin behind.
func TestRealNodes(t *testing.T) {
	opts := labOptions(t, labDir(t))
	imageDir := os.Getenv("BGPLB_IMAGE_DIR")
	if imageDir == "" {
		t.Skip("set BGPLB_IMAGE_DIR to the output of `make image image-pause` (make test-lab-containerd does)")
	}
	opts.Runtime, opts.ImageDir, opts.NoDaemon, opts.Nodes = lab.RuntimeContainerd, imageDir, false, 2
	ctx := context.Background()
	l, err := lab.Up(ctx, opts)
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	downed := false
	t.Cleanup(func() {
		if !downed {
			_ = lab.Down(l.Dir) // best effort after a failure; the checks below ran or the test failed
		}
	})
	cs, err := l.Clientset()
	if err != nil {
		t.Fatal(err)
	}

	t.Log("bgplbd runs only as DaemonSet pods and chained bgplb into every conflist")
	if m, _ := filepath.Glob(filepath.Join(l.Dir, "pids", "*-bgplbd.pid")); len(m) > 0 {
		t.Errorf("the lab started bgplbd itself: %v", m)
	}
	for _, n := range l.Nodes {
		var conf struct {
			Plugins []struct {
				Type string `json:"type"`
			} `json:"plugins"`
		}
		data, err := os.ReadFile(filepath.Join(n.CNIConfDir(), lab.CNIConflistFile))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &conf); err != nil {
			t.Fatalf("%s conflist: %v", n.Name, err)
		}
		if len(conf.Plugins) != 2 || conf.Plugins[1].Type != "bgplb" {
			t.Errorf("%s conflist: want ptp then bgplb, got %s", n.Name, data)
		}
	}

	lbc, err := labsuite.New(l)
	if err != nil {
		t.Fatal(err)
	}
	if err := labsuite.ApplyBase(ctx, lbc.LB); err != nil {
		t.Fatal(err)
	}
	image, err := l.ImageRef("podserver")
	if err != nil {
		t.Fatal(err)
	}
	lbls := map[string]string{"app": "real"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "real", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](4),
			Selector: &metav1.LabelSelector{MatchLabels: lbls},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: lbls},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To[int64](5),
					Containers: []corev1.Container{{Name: "server", Image: image,
						Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}},
				},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "real", Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: ptr.To(lbv1.DefaultLoadBalancerClass),
			Selector: lbls,
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	if _, err := cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var pods []corev1.Pod
	eventually(t, 90*time.Second, "4 ready pods", func() error {
		list, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=real"})
		if err != nil {
			return err
		}
		pods = list.Items
		ready := 0
		for _, p := range pods {
			if podReady(&p) {
				ready++
			}
		}
		if ready != 4 {
			return fmt.Errorf("%d of %d ready", ready, len(pods))
		}
		return nil
	})
	t.Log("the chained plugin recorded every pod started by containerd")
	records := 0
	for _, n := range l.Nodes {
		m, _ := filepath.Glob(filepath.Join(n.Dir, "host", "var-lib-bgplb", "endpoints", "*.json"))
		records += len(m)
	}
	if records != 4 {
		t.Errorf("%d endpoint records on the nodes, want 4 (one per pod)", records)
	}

	var vip netip.Addr
	eventually(t, 60*time.Second, "a VIP", func() error {
		s, err := cs.CoreV1().Services("default").Get(ctx, "real", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(s.Status.LoadBalancer.Ingress) == 0 {
			return fmt.Errorf("no ingress")
		}
		vip, err = netip.ParseAddr(s.Status.LoadBalancer.Ingress[0].IP)
		return err
	})
	prefix := netip.PrefixFrom(vip, 32)
	var hops []netip.Addr
	eventually(t, 60*time.Second, "the VIP's route at the router via both nodes", func() error {
		hops, err = lbc.Router.FIBNextHops(ctx, prefix)
		if err != nil {
			return err
		}
		if len(hops) != 2 {
			return fmt.Errorf("next hops %v", hops)
		}
		return nil
	})
	client := lab.NetNS(lab.ClientNS).HTTPClient(2 * time.Second)
	url := "http://" + vip.String() + "/hostname"
	eventually(t, 30*time.Second, "the VIP answers the client", func() error {
		_, err := tryGet(client, url)
		return err
	})

	t.Log("delete node1's bgplbd pod under load: no failed request, no route change")
	type sample struct {
		hops []netip.Addr
		err  error
	}
	stop := make(chan struct{})
	done := make(chan [2]int)
	go func() { // bounded: at most 2 minutes of requests
		ok, failed := 0, 0
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) {
			select {
			case <-stop:
				done <- [2]int{ok, failed}
				return
			default:
			}
			if _, err := tryGet(client, url); err != nil {
				failed++
				t.Logf("request failed: %v", err)
			} else {
				ok++
			}
		}
		done <- [2]int{ok, failed}
	}()
	samples := make(chan []sample, 1)
	go func() {
		var out []sample
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) {
			select {
			case <-stop:
				samples <- out
				return
			case <-time.After(200 * time.Millisecond):
			}
			h, err := lbc.Router.FIBNextHops(ctx, prefix)
			out = append(out, sample{h, err})
		}
		samples <- out
	}()
	time.Sleep(2 * time.Second) // load before the restart
	old, err := cs.CoreV1().Pods(lab.DaemonNamespace).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=node1"})
	if err != nil || len(old.Items) != 1 {
		t.Fatalf("bgplbd pod on node1: %v (%d pods)", err, len(old.Items))
	}
	if err := l.SignalDaemon(ctx, "node1", syscall.SIGTERM, true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second) // load after the new pod is Ready
	close(stop)
	counts, route := <-done, <-samples
	t.Logf("%d requests answered, %d failed; %d route samples", counts[0], counts[1], len(route))
	if counts[1] != 0 || counts[0] == 0 {
		t.Errorf("%d requests failed (%d answered) across the bgplbd pod restart", counts[1], counts[0])
	}
	for _, s := range route {
		if s.err != nil || !slices.Equal(s.hops, hops) {
			t.Errorf("the router's route changed during the restart: %v %v (want %v)", s.hops, s.err, hops)
			break
		}
	}
	now, err := cs.CoreV1().Pods(lab.DaemonNamespace).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=node1"})
	if err != nil || len(now.Items) != 1 || now.Items[0].UID == old.Items[0].UID {
		t.Errorf("want a new bgplbd pod on node1, have %d (err %v)", len(now.Items), err)
	}

	t.Log("down leaves nothing behind")
	if err := lab.Down(l.Dir); err != nil {
		t.Fatalf("down: %v", err)
	}
	downed = true
	checkNothingLeft(t, l.Dir)
}

// checkNothingLeft fails the test when anything of the lab in dir remains: a process
// whose command line or mounts name the lab dir, a cgroup of its nodes, a mount, a
// namespace or a pin.
func checkNothingLeft(t *testing.T, dir string) {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cmdline, _ := os.ReadFile(filepath.Join(p, "cmdline"))
		if strings.Contains(string(cmdline), dir) {
			t.Errorf("process %s still runs: %s", p, strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
		mi, _ := os.ReadFile(filepath.Join(p, "mountinfo"))
		if strings.Contains(string(mi), dir+"/") {
			t.Errorf("process %s still has a mount of the lab", p)
		}
	}
	cg, _ := filepath.Glob("/sys/fs/cgroup/*/" + lab.Prefix + "-lab-node*")
	cg2, _ := filepath.Glob("/sys/fs/cgroup/" + lab.Prefix + "-lab-node*")
	if left := append(cg, cg2...); len(left) > 0 {
		t.Errorf("cgroups left: %v", left)
	}
	nss, err := lab.LabNetns()
	if err != nil || len(nss) > 0 {
		t.Errorf("namespaces left: %v (%v)", nss, err)
	}
	if _, err := os.Stat(lab.BPFPinRoot); err == nil {
		t.Errorf("pins left in %s", lab.BPFPinRoot)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("lab dir %s left", dir)
	}
}
