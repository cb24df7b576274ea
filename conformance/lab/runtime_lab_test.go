//go:build lab

package lab_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
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
	"github.com/bgplb/bgplb/conformance/suite"
	lbv1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"

	"github.com/bgplb/bgplb/internal/poll"
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
	poll.Eventually(t, 90*time.Second, every, "4 ready pods", func() error {
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
	// The allocator's pods may have started before bgplbd chained the plugin: only
	// ours are sure to have gone through it.
	if records < 4 {
		t.Errorf("%d endpoint records on the nodes, want at least 4 (one per pod of the test)", records)
	}

	var vip netip.Addr
	poll.Eventually(t, 60*time.Second, every, "a VIP", func() error {
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
	poll.Eventually(t, 60*time.Second, every, "the VIP's route at the router via both nodes", func() error {
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
	poll.Eventually(t, 30*time.Second, every, "the VIP answers the client", func() error {
		_, err := tryGet(client, url)
		return err
	})

	steady := func(t *testing.T, what string, fn func() error) {
		t.Helper()
		ok, failed, routeErr := underLoad(t, func() error { _, err := tryGet(client, url); return err },
			func() error {
				h, err := lbc.Router.FIBNextHops(ctx, prefix)
				if err == nil && !slices.Equal(h, hops) {
					err = fmt.Errorf("next hops %v, want %v", h, hops)
				}
				return err
			}, fn)
		t.Logf("%s: %d requests answered, %d failed", what, ok, failed)
		if failed != 0 || ok == 0 {
			t.Errorf("%s: %d requests failed (%d answered)", what, failed, ok)
		}
		if routeErr != nil {
			t.Errorf("%s: the router's route changed: %v", what, routeErr)
		}
	}

	t.Log("delete node1's bgplbd pod under load: no failed request, no route change")
	old, err := cs.CoreV1().Pods(lab.DaemonNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=bgplbd", FieldSelector: "spec.nodeName=node1"})
	if err != nil || len(old.Items) != 1 {
		t.Fatalf("bgplbd pod on node1: %v (%d pods)", err, len(old.Items))
	}
	steady(t, "bgplbd pod deleted", func() error {
		if err := l.SignalDaemon(ctx, "node1", syscall.SIGTERM, true); err != nil {
			return err
		}
		return l.WaitDaemonSet(ctx, cs, 2*time.Minute)
	})
	now, err := cs.CoreV1().Pods(lab.DaemonNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=bgplbd", FieldSelector: "spec.nodeName=node1"})
	if err != nil || len(now.Items) != 1 || now.Items[0].UID == old.Items[0].UID {
		t.Errorf("want a new bgplbd pod on node1, have %d (err %v)", len(now.Items), err)
	}

	t.Run("upgrade", func(t *testing.T) {
		dirB := os.Getenv("BGPLB_UPGRADE_IMAGE_DIR")
		if dirB == "" {
			t.Skip("set BGPLB_UPGRADE_IMAGE_DIR to a second build of the bgplb image (make test-lab-containerd does)")
		}
		imageB, err := imageRefIn(dirB, "bgplb")
		if err != nil {
			t.Fatal(err)
		}
		imageA, _ := l.ImageRef("bgplb")
		if imageA == imageB {
			t.Fatalf("image B %s is image A", imageB)
		}
		if err := l.ImportImage(ctx, filepath.Join(dirB, "bgplb.tar")); err != nil {
			t.Fatal(err)
		}
		mapsBefore := pinnedMapIDs(t, l)
		versionsBefore := nodeVersions(t, lbc)
		t.Logf("roll bgplbd from %s to %s under load", imageA, imageB)
		steady(t, "DaemonSet rolled to image B", func() error { return l.SetDaemonImage(ctx, imageB) })
		if after := pinnedMapIDs(t, l); !maps.Equal(after, mapsBefore) {
			t.Errorf("pinned maps were replaced, not adopted: before %v, after %v", mapsBefore, after)
		}
		poll.Eventually(t, 60*time.Second, every, "BGPNodeStates report image B's version", func() error {
			for node, v := range nodeVersions(t, lbc) {
				if v == versionsBefore[node] || !strings.Contains(imageB, v) {
					return fmt.Errorf("%s reports version %q (before %q; image %s)", node, v, versionsBefore[node], imageB)
				}
			}
			return nil
		})
	})

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

// underLoad runs request in a loop and check (the router's route) every 200 ms while fn
// runs and for 3 s before and after it (at most 6 minutes in all). It returns the
// answered and failed requests and the first check error.
func underLoad(t *testing.T, request, check func() error, fn func() error) (ok, failed int, checkErr error) {
	t.Helper()
	stop := make(chan struct{})
	done := make(chan [2]int)
	go func() {
		var n [2]int
		for deadline := time.Now().Add(6 * time.Minute); time.Now().Before(deadline); {
			select {
			case <-stop:
				done <- n
				return
			default:
			}
			if err := request(); err != nil {
				n[1]++
				t.Logf("request failed: %v", err)
			} else {
				n[0]++
			}
		}
		done <- n
	}()
	checked := make(chan error)
	go func() {
		for deadline := time.Now().Add(6 * time.Minute); time.Now().Before(deadline); {
			select {
			case <-stop:
				checked <- nil
				return
			case <-time.After(200 * time.Millisecond):
			}
			if err := check(); err != nil {
				<-stop
				checked <- err
				return
			}
		}
		<-stop
		checked <- nil
	}()
	time.Sleep(3 * time.Second)
	fnErr := fn()
	if fnErr == nil {
		time.Sleep(3 * time.Second)
	}
	close(stop)
	n, cerr := <-done, <-checked
	if fnErr != nil {
		t.Fatal(fnErr)
	}
	return n[0], n[1], cerr
}

// imageRefIn reads the image name an imagebuild layout <dir>/<name> carries.
func imageRefIn(dir, name string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, name, "index.json"))
	if err != nil {
		return "", err
	}
	var idx struct {
		Manifests []struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(data, &idx); err != nil || len(idx.Manifests) != 1 {
		return "", fmt.Errorf("decode %s/%s/index.json: %v", dir, name, err)
	}
	return idx.Manifests[0].Annotations["io.containerd.image.name"], nil
}

// pinnedMapIDs returns the kernel IDs of the maps pinned in every node's pin dir
// (bpftool): a daemon that adopts the pins keeps them.
func pinnedMapIDs(t *testing.T, l *lab.Lab) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, n := range l.Nodes {
		pins, _ := filepath.Glob(filepath.Join(n.BPFPinDir(), "bgplb", "lb_*"))
		if len(pins) == 0 {
			t.Fatalf("no pinned maps in %s", filepath.Join(n.BPFPinDir(), "bgplb"))
		}
		for _, p := range pins {
			data, err := exec.Command("bpftool", "-j", "map", "show", "pinned", p).Output()
			if err != nil {
				t.Fatalf("bpftool map show pinned %s: %v", p, err)
			}
			var m struct {
				ID int `json:"id"`
			}
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatalf("decode bpftool output for %s: %v", p, err)
			}
			out[p] = m.ID
		}
	}
	return out
}

// nodeVersions returns status.version of every BGPNodeState.
func nodeVersions(t *testing.T, s *suite.Suite) map[string]string {
	t.Helper()
	list, err := s.LB.BgplbV1alpha1().BGPNodeStates().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list BGPNodeStates: %v", err)
	}
	out := map[string]string{}
	for _, st := range list.Items {
		out[st.Name] = st.Status.Version
	}
	return out
}
