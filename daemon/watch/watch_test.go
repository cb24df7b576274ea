package watch

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	crdfake "github.com/bgplb/bgplb/daemon/client/clientset/versioned/fake"
	"github.com/bgplb/bgplb/daemon/registry/api"
	"github.com/bgplb/bgplb/internal/poll"
)

type recorder struct {
	mu   sync.Mutex
	seen map[string]int
}

func (r *recorder) sync(_ context.Context, key string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen[key]++
	return nil
}

func (r *recorder) count(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[key]
}

func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = map[string]int{}
}

// waitFor and tick are how long and how often the tests poll the caches and queues.
const (
	waitFor = 5 * time.Second
	tick    = 10 * time.Millisecond
)

func TestHandlersEnqueueServiceKeys(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	kube := fake.NewClientset()
	crd := crdfake.NewSimpleClientset()
	c, err := NewCaches(kube, crd, Options{NodeName: "node1", SecretNamespace: "bgplb-system"})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{seen: map[string]int{}}
	q := NewQueue("test", rec.sync)
	c.Subscribe(q, Triggers{Services: true, Slices: true, Node: []string{AllServices}, Peers: []string{"@peers"}, Pools: []string{AllServices}})
	c.Start(ctx)
	if !c.WaitForCacheSync(ctx) {
		t.Fatal("caches did not sync")
	}
	go q.Run(ctx, 2)

	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web",
		Annotations:   map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{...}", v1alpha1.AnnotationSharingKey: "k"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}}
	if _, err := kube.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, waitFor, tick, "service key", func() bool { return rec.count("default/web") > 0 })
	poll.Eventually(t, waitFor, tick, "service in lister", func() bool { _, err := c.Services.Services("default").Get("web"); return err == nil })
	cached, _ := c.Services.Services("default").Get("web")
	if cached.ManagedFields != nil || len(cached.Annotations) != 1 || cached.Annotations[v1alpha1.AnnotationSharingKey] != "k" {
		t.Fatalf("cached service not trimmed: managedFields=%v annotations=%v", cached.ManagedFields, cached.Annotations)
	}

	rec.reset()
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"198.19.1.5"}, NodeName: ptr.To("node1")},
			{Addresses: []string{"198.19.2.5"}, NodeName: ptr.To("node2")},
		},
	}
	if _, err := kube.DiscoveryV1().EndpointSlices("default").Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, waitFor, tick, "slice -> service key", func() bool { return rec.count("default/web") > 0 })
	poll.Eventually(t, waitFor, tick, "slice indexed", func() bool {
		s, _ := c.SlicesForService("default", "web")
		return len(s) == 1
	})
	if got := c.ServicesForLocalIP(netip.MustParseAddr("198.19.1.5")); len(got) != 1 || got[0] != "default/web" {
		t.Fatalf("ServicesForLocalIP(local) = %v", got)
	}
	if got := c.ServicesForLocalIP(netip.MustParseAddr("198.19.2.5")); len(got) != 0 {
		t.Fatalf("ServicesForLocalIP(remote endpoint) = %v, want none", got)
	}

	rec.reset()
	c.EnqueueEndpoint(q, api.Endpoint{IPs: []netip.Addr{netip.MustParseAddr("198.19.1.5")}})
	poll.Eventually(t, waitFor, tick, "registry change -> service key", func() bool { return rec.count("default/web") > 0 })

	rec.reset()
	if _, err := kube.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, waitFor, tick, "node -> all services", func() bool { return rec.count("default/web") > 0 })
	poll.Eventually(t, waitFor, tick, "node cached", func() bool { return c.Node() != nil })

	rec.reset()
	if _, err := crd.BgplbV1alpha1().BGPPeers().Create(ctx, &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "r"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, waitFor, tick, "peer -> @peers", func() bool { return rec.count("@peers") > 0 })
	if rec.count("default/web") != 0 {
		t.Fatal("a peer change enqueued services, want only @peers")
	}
}

func TestNodeHeartbeatDoesNotResync(t *testing.T) {
	base := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: map[string]string{"a": "b"}},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
	hb := base.DeepCopy()
	hb.Status.Conditions[0].LastHeartbeatTime = metav1.Now()
	if nodeRelevantChange(base, hb) {
		t.Fatal("a heartbeat counts as a relevant change")
	}
	notReady := base.DeepCopy()
	notReady.Status.Conditions[0].Status = corev1.ConditionFalse
	relabeled := base.DeepCopy()
	relabeled.Labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
	for _, n := range []*corev1.Node{notReady, relabeled} {
		if !nodeRelevantChange(base, n) {
			t.Fatalf("change %+v not relevant", n)
		}
	}
}

// TestNodeStatesOnlyWhenEnabled: the BGPNodeState informer does not exist until
// EnableLeaderCaches (only the leader pays for every node's state); then the store
// holds the API objects and handlers subscribed afterwards
// fire.
func TestNodeStatesOnlyWhenEnabled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	crd := crdfake.NewSimpleClientset(&v1alpha1.BGPNodeState{ObjectMeta: metav1.ObjectMeta{Name: "node2"}})
	kube := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"}}, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node2"}})
	c, err := NewCaches(kube, crd, Options{NodeName: "node1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.EnableLeaderCaches(ctx); err == nil {
		t.Fatal("EnableLeaderCaches before Start succeeded")
	}
	rec := &recorder{seen: map[string]int{}}
	q := NewQueue("test", rec.sync)
	c.Subscribe(q, Triggers{NodeStates: []string{"@before"}}) // ignored: not enabled yet
	c.Start(ctx)
	if !c.WaitForCacheSync(ctx) {
		t.Fatal("caches did not sync")
	}
	if c.Node() == nil { // (the fake clientset ignores the field selector of this node's informer)
		t.Fatal("no Node object of this node")
	}
	if c.NodeStates() != nil || c.AllNodes() != nil {
		t.Fatal("BGPNodeState store exists before EnableLeaderCaches")
	}
	for range 2 { // idempotent
		if err := c.EnableLeaderCaches(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if obj, err := c.NodeStates().Get("node2"); err != nil || obj.Name != "node2" {
		t.Fatalf("lister after EnableLeaderCaches: %v, %v; want node2", obj, err)
	}
	if all, err := c.AllNodes().List(labels.Everything()); err != nil || len(all) != 2 {
		t.Fatalf("every node after EnableLeaderCaches: %v, %v; want 2", all, err)
	}
	c.Subscribe(q, Triggers{NodeStates: []string{"@after"}})
	go q.Run(ctx, 1)
	if _, err := crd.BgplbV1alpha1().BGPNodeStates().Create(ctx, &v1alpha1.BGPNodeState{ObjectMeta: metav1.ObjectMeta{Name: "node3"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, waitFor, tick, "@after enqueued", func() bool { return rec.count("@after") > 0 })
	if n := rec.count("@before"); n != 0 {
		t.Errorf("handler subscribed before EnableLeaderCaches fired %d times", n)
	}
}

// TestSlicesForServiceIndex: with far more Services and local endpoints than index
// buckets (so buckets are shared), in several namespaces and with two slices for some,
// SlicesForService returns exactly each Service's slices and ServicesForLocalIP exactly
// the Services with an endpoint on this node at an IP, also after slices move or go.
func TestSlicesForServiceIndex(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	kube := fake.NewClientset()
	c, err := NewCaches(kube, nil, Options{NodeName: "node1"})
	if err != nil {
		t.Fatal(err)
	}
	c.Start(ctx)
	if !c.WaitForCacheSync(ctx) {
		t.Fatal("caches did not sync")
	}
	const services = 300
	mkSlice := func(ns, name, svc string) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
			AddressType: discoveryv1.AddressTypeIPv4,
		}
	}
	want := map[string][]string{}         // "ns/svc" -> slice names
	wantByIP := map[netip.Addr][]string{} // local endpoint IP -> "ns/svc"
	ipOf := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 19, byte(i / 250), byte(1 + i%250)}) }
	for i := range services {
		ns, svc := fmt.Sprintf("ns%d", i%3), fmt.Sprintf("svc-%d", i)
		n := 1 + i%2
		for j := range n {
			name := fmt.Sprintf("%s-%d", svc, j)
			sl := mkSlice(ns, name, svc)
			if j == 0 {
				// Even Services have their endpoint on this node, odd ones on another.
				node := []string{"node1", "node2"}[i%2]
				sl.Endpoints = []discoveryv1.Endpoint{{Addresses: []string{ipOf(i).String()}, NodeName: ptr.To(node)}}
				if node == "node1" {
					wantByIP[ipOf(i)] = []string{ns + "/" + svc}
				}
			}
			if _, err := kube.DiscoveryV1().EndpointSlices(ns).Create(ctx, sl, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			want[ns+"/"+svc] = append(want[ns+"/"+svc], name)
		}
	}
	// The same Service name in another namespace is another Service.
	if _, err := kube.DiscoveryV1().EndpointSlices("other").Create(ctx, mkSlice("other", "svc-0-x", "svc-0"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	want["other/svc-0"] = []string{"svc-0-x"}
	check := func() string {
		for key, names := range want {
			ns, name, _ := strings.Cut(key, "/")
			got, err := c.SlicesForService(ns, name)
			if err != nil {
				return err.Error()
			}
			var gotNames []string
			for _, s := range got {
				gotNames = append(gotNames, s.Name)
			}
			slices.Sort(gotNames)
			if !slices.Equal(gotNames, names) {
				return fmt.Sprintf("%s: slices %v, want %v", key, gotNames, names)
			}
		}
		for i := range services {
			if got := c.ServicesForLocalIP(ipOf(i)); !slices.Equal(got, wantByIP[ipOf(i)]) {
				return fmt.Sprintf("ServicesForLocalIP(%s) = %v, want %v", ipOf(i), got, wantByIP[ipOf(i)])
			}
		}
		return ""
	}
	poll.Eventually(t, 2*waitFor, 2*tick, "the index to match the cache", check)

	// A slice moved to another Service (its endpoint with it), and one deleted.
	moved := mkSlice("ns1", "svc-1-0", "svc-4")
	if _, err := kube.DiscoveryV1().EndpointSlices("ns1").Update(ctx, moved, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	want["ns1/svc-1"] = []string{"svc-1-1"}
	want["ns1/svc-4"] = append(want["ns1/svc-4"], "svc-1-0")
	slices.Sort(want["ns1/svc-4"])
	if err := kube.DiscoveryV1().EndpointSlices("ns0").Delete(ctx, "svc-3-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	want["ns0/svc-3"] = []string{"svc-3-1"}
	// And a slice with a local endpoint deleted: its IP maps to no Service any more.
	if err := kube.DiscoveryV1().EndpointSlices("ns0").Delete(ctx, "svc-0-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	want["ns0/svc-0"] = nil
	delete(wantByIP, ipOf(0))
	poll.Eventually(t, 2*waitFor, 2*tick, "the index to match the cache", check)
}

// TestNodeStateChangesTrigger: NodeStateChanges gets the stored objects before and after
// each add, update and delete (the transform applied) and its keys are enqueued;
// AllServices expands to every Service.
func TestNodeStateChangesTrigger(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	kube := fake.NewClientset(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "a"}})
	crd := crdfake.NewSimpleClientset()
	c, err := NewCaches(kube, crd, Options{NodeName: "node1"})
	if err != nil {
		t.Fatal(err)
	}
	c.Start(ctx)
	if !c.WaitForCacheSync(ctx) {
		t.Fatal("caches did not sync")
	}
	if err := c.EnableLeaderCaches(ctx); err != nil {
		t.Fatal(err)
	}
	name := func(obj any) string {
		if k, ok := obj.(*v1alpha1.BGPNodeState); ok {
			return k.Name + "@" + k.Labels["step"]
		}
		return fmt.Sprintf("%T", obj)
	}
	rec := &recorder{seen: map[string]int{}}
	q := NewQueue("test", rec.sync)
	var mu sync.Mutex
	var calls []string
	c.Subscribe(q, Triggers{NodeStates: []string{"@ignored"}, NodeStateChanges: func(o, n any) []string {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, name(o)+" -> "+name(n))
		if n == nil {
			return []string{AllServices}
		}
		return []string{"@" + name(n)}
	}})
	go q.Run(ctx, 1)
	states := crd.BgplbV1alpha1().BGPNodeStates()
	s := &v1alpha1.BGPNodeState{ObjectMeta: metav1.ObjectMeta{Name: "node3", Labels: map[string]string{"step": "1"}}}
	if _, err := states.Create(ctx, s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, waitFor, tick, "the add's key", func() bool { return rec.count("@node3@1") == 1 })
	s.Labels["step"], s.ResourceVersion = "2", "2"
	if _, err := states.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, waitFor, tick, "the update's key", func() bool { return rec.count("@node3@2") == 1 })
	if err := states.Delete(ctx, "node3", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, waitFor, tick, "every Service after the delete", func() bool { return rec.count("web/a") == 1 })
	mu.Lock()
	defer mu.Unlock()
	want := []string{"<nil> -> node3@1", "node3@1 -> node3@2", "node3@2 -> <nil>"}
	if !slices.Equal(calls, want) {
		t.Errorf("NodeStateChanges calls = %q, want %q", calls, want)
	}
	if n := rec.count("@ignored"); n != 0 {
		t.Errorf("NodeStates keys enqueued %d times although NodeStateChanges replaces them", n)
	}
}
