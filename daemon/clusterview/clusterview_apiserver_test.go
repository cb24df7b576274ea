//go:build apiserver

package clusterview

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/client/clientset/versioned"
	"github.com/bgplb/bgplb/internal/apiservertest"
	"github.com/bgplb/bgplb/manifests"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// t0 is when node1's session came up; tables are printed 90 s later.
var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// TestCLIAgainstAPIServer runs every cluster command against a real kube-apiserver +
// etcd holding a small bgplb cluster's objects (as the daemons would have written them)
// and compares the tables with golden files, the JSON with the stable schema, and runs
// the plugin through kubectl.
func TestCLIAgainstAPIServer(t *testing.T) {
	srv := apiservertest.Start(t)
	ctx := context.Background()
	kube := kubernetes.NewForConfigOrDie(srv.Config)
	crd := versioned.NewForConfigOrDie(srv.Config)
	installCRDs(t, dynamic.NewForConfigOrDie(srv.Config), crd)
	seed(t, ctx, kube, crd)

	run := func(t *testing.T, args ...string) (string, int) {
		t.Helper()
		o := NewOptions()
		o.Now = func() time.Time { return t0.Add(90 * time.Second) }
		root := &cobra.Command{Use: "kubectl bgplb", SilenceUsage: true, SilenceErrors: true}
		o.AddKubeconfigFlag(root.PersistentFlags())
		o.AddFlags(root.PersistentFlags())
		o.AddOutputFlag(root.PersistentFlags())
		root.AddCommand(Commands(o, "doctor")...)
		var out, errOut bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&errOut)
		// --kubeconfig first: after `node NODE` every argument belongs to the remote bgplbctl.
		root.SetArgs(append([]string{"--kubeconfig", srv.Kubeconfig}, args...))
		code := Main(root, &errOut)
		if errOut.Len() > 0 {
			t.Logf("stderr of %v: %s", args, errOut.String())
		}
		return out.String(), code
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"services", []string{"services"}, ExitOK},
		{"services-ns", []string{"services", "-n", "web"}, ExitOK},
		{"sessions", []string{"sessions"}, ExitOK},
		{"sessions-node1", []string{"peers", "node1"}, ExitOK},
		{"pools", []string{"pools"}, ExitOK},
		{"doctor", []string{"doctor"}, ExitFailures},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := run(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
			golden(t, tc.name+".golden", out)

			// The same data as JSON and YAML, with the stable schema.
			js, code := run(t, append(tc.args, "-o", "json")...)
			if code != tc.code {
				t.Errorf("-o json: exit code %d, want %d", code, tc.code)
			}
			var v any
			if err := json.Unmarshal([]byte(js), &v); err != nil {
				t.Fatalf("-o json is not JSON: %v\n%s", err, js)
			}
			ys, _ := run(t, append(tc.args, "-o", "yaml")...)
			var vy any
			if err := yaml.Unmarshal([]byte(ys), &vy); err != nil {
				t.Fatalf("-o yaml is not YAML: %v\n%s", err, ys)
			}
			if jy, _ := json.Marshal(vy); !jsonEqual(t, jy, []byte(js)) {
				t.Errorf("-o yaml and -o json differ:\n%s\n%s", ys, js)
			}
			golden(t, tc.name+".schema", strings.Join(schemaOf(v, "$"), "\n")+"\n")
		})
	}

	t.Run("bad-output", func(t *testing.T) {
		if _, code := run(t, "pools", "-o", "wide"); code != ExitError {
			t.Errorf("-o wide: exit code %d, want %d", code, ExitError)
		}
	})

	t.Run("node-pod", func(t *testing.T) {
		pod, err := NodePod(ctx, kube, "bgplb-system", "node1")
		if err != nil || pod.Name != "bgplbd-node1" {
			t.Fatalf("NodePod(node1) = %v, %v; want bgplbd-node1", pod, err)
		}
		if _, err := NodePod(ctx, kube, "bgplb-system", "node3"); err == nil || !strings.Contains(err.Error(), "no running bgplbd pod") {
			t.Fatalf("NodePod(node3) error = %v, want no running pod", err)
		}
		// node3's pod is Pending: `node` finds no pod to exec into and fails (exit 1).
		_, code := run(t, "node", "node3", "status")
		if code != ExitError {
			t.Errorf("node node3: exit code %d, want %d", code, ExitError)
		}
	})

	t.Run("node-exec", func(t *testing.T) { testNodeExec(t, ctx, kube, run) })

	t.Run("kubectl-plugin", func(t *testing.T) {
		kubectl := apiservertest.Tool(t, "kubectl")
		bin := t.TempDir()
		build := exec.Command("go", "build", "-o", bin+"/", "github.com/bgplb/bgplb/daemon/cmd/kubectl-bgplb")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build kubectl-bgplb: %v\n%s", err, out)
		}
		env := append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "KUBECONFIG="+srv.Kubeconfig)
		list := exec.Command(kubectl, "plugin", "list")
		list.Env = env
		out, err := list.CombinedOutput()
		if err != nil || !strings.Contains(string(out), filepath.Join(bin, "kubectl-bgplb")) {
			t.Fatalf("kubectl plugin list does not find %s (err %v):\n%s", filepath.Join(bin, "kubectl-bgplb"), err, out)
		}
		// kubectl runs it as `kubectl bgplb`, with the same output as the package.
		svc := exec.Command(kubectl, "bgplb", "services", "-o", "json")
		svc.Env = env
		got, err := svc.Output()
		if err != nil {
			t.Fatalf("kubectl bgplb services: %v", err)
		}
		want, _ := run(t, "services", "-o", "json")
		if !jsonEqual(t, got, []byte(want)) {
			t.Errorf("kubectl bgplb services -o json:\n%s\nwant:\n%s", got, want)
		}
		doc := exec.Command(kubectl, "bgplb", "doctor")
		doc.Env = env
		_ = doc.Run() // the exit status is the point
		if doc.ProcessState.ExitCode() != ExitFailures {
			t.Errorf("kubectl bgplb doctor exit code %d, want %d", doc.ProcessState.ExitCode(), ExitFailures)
		}
	})
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("unmarshal %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

// schemaOf lists every JSON path of v with its type (array elements as [*]), sorted and
// de-duplicated: the golden .schema files pin the output's shape, so renaming or
// removing a field fails the test, and adding one shows in the diff.
func schemaOf(v any, path string) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		out = append(out, path+": object")
		for k, e := range v {
			out = append(out, schemaOf(e, path+"."+k)...)
		}
	case []any:
		out = append(out, path+": array")
		for _, e := range v {
			out = append(out, schemaOf(e, path+"[*]")...)
		}
	case string:
		out = append(out, path+": string")
	case float64:
		out = append(out, path+": number")
	case bool:
		out = append(out, path+": boolean")
	case nil:
		out = append(out, path+": null")
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden %s (run with -update to create it): %v", path, err)
	}
	if string(want) != got {
		t.Errorf("%s differs (run with -update after reviewing):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// installCRDs creates the CRDs of manifests/base/crds and waits until they serve.
func installCRDs(t *testing.T, dyn dynamic.Interface, crd versioned.Interface) {
	t.Helper()
	ctx := context.Background()
	files, err := fs.Glob(manifests.CRDs, "base/crds/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no embedded CRDs: %v", err)
	}
	for _, f := range files {
		b, err := manifests.CRDs.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(b, &obj.Object); err != nil {
			t.Fatalf("parse %s: %v", f, err)
		}
		if _, err := dyn.Resource(crdGVR).Create(ctx, obj, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create CRD from %s: %v", f, err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, e1 := crd.BgplbV1alpha1().LoadBalancerIPPools().List(ctx, metav1.ListOptions{})
		_, e2 := crd.BgplbV1alpha1().BGPNodeStates().List(ctx, metav1.ListOptions{})
		_, e3 := crd.BgplbV1alpha1().BGPPeers().List(ctx, metav1.ListOptions{})
		if e1 == nil && e2 == nil && e3 == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("CRDs not served: %v %v %v", e1, e2, e3)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// must returns v, or panics (failing the test, whose cleanups still run) on err.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// seed writes what the daemons of a three-node cluster would have written: pools with
// status, a peer, node states (node1 up, node2 down, node3 none), bgplbd's DaemonSet and
// pods, and Services in every state.
func seed(t *testing.T, ctx context.Context, kube kubernetes.Interface, crd versioned.Interface) {
	t.Helper()
	for _, ns := range []string{"bgplb-system", "web", "other"} {
		must(kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}))
		// No controller manager runs here to create the default ServiceAccount pods need.
		must(kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}))
	}
	for _, n := range []string{"node1", "node2", "node3"} {
		must(kube.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}))
	}
	pools := crd.BgplbV1alpha1().LoadBalancerIPPools()
	lab := must(pools.Create(ctx, &v1alpha1.LoadBalancerIPPool{ObjectMeta: metav1.ObjectMeta{Name: "lab"},
		Spec: v1alpha1.LoadBalancerIPPoolSpec{Blocks: []v1alpha1.IPBlock{{CIDR: "203.0.113.0/28"}}}}, metav1.CreateOptions{}))
	lab.Status.IPv4 = &v1alpha1.PoolCounts{Total: 16, Used: 15, Free: 1}
	meta.SetStatusCondition(&lab.Status.Conditions, metav1.Condition{Type: v1alpha1.PoolConditionReady, Status: metav1.ConditionTrue, Reason: "Ready", Message: "ready"})
	must(pools.UpdateStatus(ctx, lab, metav1.UpdateOptions{}))
	v6 := must(pools.Create(ctx, &v1alpha1.LoadBalancerIPPool{ObjectMeta: metav1.ObjectMeta{Name: "v6"},
		Spec: v1alpha1.LoadBalancerIPPoolSpec{Blocks: []v1alpha1.IPBlock{{Start: "2001:db8:ffff::10", Stop: "2001:db8:ffff::1f"}}}}, metav1.CreateOptions{}))
	v6.Status.IPv6 = &v1alpha1.PoolCounts{Total: 16, Used: 1, Free: 15}
	meta.SetStatusCondition(&v6.Status.Conditions, metav1.Condition{Type: v1alpha1.PoolConditionReady, Status: metav1.ConditionTrue, Reason: "Ready", Message: "ready"})
	must(pools.UpdateStatus(ctx, v6, metav1.UpdateOptions{}))

	must(crd.BgplbV1alpha1().BGPPeers().Create(ctx, &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "router"},
		Spec: v1alpha1.BGPPeerSpec{PeerAddress: "198.18.0.1", PeerASN: 64512, LocalASN: 64513}}, metav1.CreateOptions{}))

	states := crd.BgplbV1alpha1().BGPNodeStates()
	for _, st := range []v1alpha1.BGPNodeState{
		{ObjectMeta: metav1.ObjectMeta{Name: "node1"}, Status: v1alpha1.BGPNodeStateStatus{Version: "v0.1.0", Peers: []v1alpha1.BGPPeerState{{
			Name: "router", Address: "198.18.0.1", PeerASN: 64512, LocalASN: 64513, State: v1alpha1.SessionEstablished,
			EstablishedSince: &metav1.Time{Time: t0}, PrefixesSent: 2}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "node2"}, Status: v1alpha1.BGPNodeStateStatus{Version: "v0.1.0", Peers: []v1alpha1.BGPPeerState{{
			Name: "router", Address: "198.18.0.1", PeerASN: 64512, LocalASN: 64513, State: v1alpha1.SessionActive,
			LastError: "connect: connection refused"}}}},
	} {
		created := must(states.Create(ctx, &v1alpha1.BGPNodeState{ObjectMeta: st.ObjectMeta}, metav1.CreateOptions{}))
		created.Status = st.Status
		must(states.UpdateStatus(ctx, created, metav1.UpdateOptions{}))
	}

	labels := map[string]string{"app.kubernetes.io/name": "bgplb", "app.kubernetes.io/component": "bgplbd"}
	ds := must(kube.AppsV1().DaemonSets("bgplb-system").Create(ctx, &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "bgplbd", Labels: labels},
		Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/component": "bgplbd"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "bgplbd", Image: "bgplb"}}}}},
	}, metav1.CreateOptions{}))
	ds.Status = appsv1.DaemonSetStatus{DesiredNumberScheduled: 3, CurrentNumberScheduled: 3, NumberReady: 2, NumberAvailable: 2}
	must(kube.AppsV1().DaemonSets("bgplb-system").UpdateStatus(ctx, ds, metav1.UpdateOptions{}))
	alloc := must(kube.AppsV1().Deployments("bgplb-system").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "bgplb-allocator", Labels: map[string]string{"app.kubernetes.io/component": "allocator"}},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/component": "allocator"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app.kubernetes.io/component": "allocator"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "allocator", Image: "bgplb"}}}}},
	}, metav1.CreateOptions{}))
	alloc.Status = appsv1.DeploymentStatus{Replicas: 2, ReadyReplicas: 2, AvailableReplicas: 2}
	must(kube.AppsV1().Deployments("bgplb-system").UpdateStatus(ctx, alloc, metav1.UpdateOptions{}))
	for _, n := range []string{"node1", "node3"} {
		pod := must(kube.CoreV1().Pods("bgplb-system").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "bgplbd-" + n, Labels: labels},
			Spec:       corev1.PodSpec{NodeName: n, Containers: []corev1.Container{{Name: "bgplbd", Image: "bgplb"}}},
		}, metav1.CreateOptions{}))
		if n == "node1" { // node3's pod is still Pending
			pod.Status.Phase = corev1.PodRunning
			must(kube.CoreV1().Pods("bgplb-system").UpdateStatus(ctx, pod, metav1.UpdateOptions{}))
		}
	}

	class := v1alpha1.DefaultLoadBalancerClass
	type svcSeed struct {
		ns, name string
		class    string
		ips      []string
		alloc    metav1.Condition
		ann      *metav1.Condition
	}
	allocated := metav1.Condition{Type: v1alpha1.ConditionIPAllocated, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonAllocated, Message: "assigned"}
	for _, s := range []svcSeed{
		{"web", "frontend", class, []string{"203.0.113.1", "2001:db8:ffff::10"}, allocated, &metav1.Condition{Type: v1alpha1.ConditionAnnounced,
			Status: metav1.ConditionTrue, Reason: "Announced", Message: "announced by 4 node(s) (node1, node2, node3 and 1 more)"}},
		{"web", "api", class, []string{"203.0.113.2"}, allocated, &metav1.Condition{Type: v1alpha1.ConditionAnnounced,
			Status: metav1.ConditionFalse, Reason: "NoEligibleEndpoints", Message: "announced by 0 nodes: no node has an eligible endpoint"}},
		{"web", "batch", class, nil, metav1.Condition{Type: v1alpha1.ConditionIPAllocated, Status: metav1.ConditionFalse,
			Reason: v1alpha1.ReasonPoolExhausted, Message: "no free address in pool(s) lab"}, nil},
		{"default", "dns", class, []string{"203.0.113.3"}, allocated, &metav1.Condition{Type: v1alpha1.ConditionAnnounced,
			Status: metav1.ConditionTrue, Reason: "Announced", Message: "announced by 1 node(s) (node1)"}},
		{"other", "foreign", "example.com/other", []string{"198.51.100.7"}, allocated, nil},
	} {
		svc := must(kube.CoreV1().Services(s.ns).Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: s.name},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: ptr.To(s.class),
				Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}}},
		}, metav1.CreateOptions{}))
		for _, ip := range s.ips {
			svc.Status.LoadBalancer.Ingress = append(svc.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
		}
		meta.SetStatusCondition(&svc.Status.Conditions, s.alloc)
		if s.ann != nil {
			meta.SetStatusCondition(&svc.Status.Conditions, *s.ann)
		}
		must(kube.CoreV1().Services(s.ns).UpdateStatus(ctx, svc, metav1.UpdateOptions{}))
	}
}
