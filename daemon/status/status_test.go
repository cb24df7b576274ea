package status

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/daemon/announce"
	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/bgp"
	"github.com/bgplb/bgplb/daemon/bgp/bgptest"
	crdfake "github.com/bgplb/bgplb/daemon/client/clientset/versioned/fake"
	bgplisters "github.com/bgplb/bgplb/daemon/client/listers/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/eligibility"
	"github.com/bgplb/bgplb/daemon/eligibility/endpoints"
	"github.com/bgplb/bgplb/daemon/peers"
	"github.com/bgplb/bgplb/daemon/servicespec"
	"github.com/bgplb/bgplb/internal/poll"
)

type fakeAnnounce struct {
	mu     sync.Mutex
	v4, v6 int
}

func (f *fakeAnnounce) PrefixCounts() (int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.v4, f.v6
}

func (f *fakeAnnounce) setV4(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.v4 = n
}

// selectEval evaluates like the TrafficPolicy plugin for one node, without registry.
type selectEval struct{ node string }

func (e selectEval) Evaluate(_ context.Context, in *eligibility.Input) (eligibility.Decision, error) {
	if ptr.Deref(in.Service.Spec.LoadBalancerClass, "") != v1alpha1.DefaultLoadBalancerClass {
		return eligibility.Decision{Reason: "NotOurClass"}, nil
	}
	sel := eligibility.SelectEndpoints(in.Service.Spec.ExternalTrafficPolicy, e.node, in.Slices, nil)
	d := eligibility.Decision{InScope: true, Announce: sel.Announce, Endpoints: sel.Keep, NewFlowEndpoints: sel.NewFlow,
		Weight: int64(len(sel.NewFlow))}
	if !sel.Announce {
		d.Reason, d.Message = "NoEligibleEndpoints", "no ready endpoint"
	}
	return d, nil
}

func selectEvalFactory(node string, _ eligibility.EndpointRegistry, _ eligibility.SessionState) (announce.Evaluator, error) {
	return selectEval{node: node}, nil
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestNodeStateWriter(t *testing.T) {
	ctx := context.Background()
	crd := crdfake.NewSimpleClientset()
	sp := bgptest.NewFake()
	must(t, sp.Start(ctx, bgp.Global{ASN: 64513, RouterID: netip.MustParseAddr("198.18.0.11"), ListenPort: -1}))
	router := netip.MustParseAddr("198.18.0.1")
	must(t, sp.SetPeers(ctx, []bgp.PeerConfig{{Name: "router", Address: router, PeerASN: 64512}}))
	since := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	sp.SetStatus(router, bgp.PeerStatus{State: bgp.StateEstablished, EstablishedSince: since, PrefixesSent: 1})
	ann := &fakeAnnounce{v4: 10000, v6: 3}
	problems := []peers.Problem{{Peer: "secure", Message: `passwordSecretRef: secret "x" not found`}}
	var errs Errors
	for i := range 20 {
		errs.Record(fmt.Sprintf("default/svc-%02d", i), errors.New("announce: boom"))
	}
	dp := &v1alpha1.DatapathSummary{Endpoints: 4, NotReady: 1, NotReadyPods: []string{"default/web-1"}}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1", UID: "uid-1"}}
	w := NewNodeStateWriter(crd, "node1", sp, ann, NodeSource{Version: "v1.2.3", Errors: errs.List,
		Datapath: func() *v1alpha1.DatapathSummary { return dp }, PeerProblems: func() []peers.Problem { return problems }}, func() *corev1.Node { return node }, time.Millisecond)
	must(t, w.Sync(ctx))
	got, err := crd.BgplbV1alpha1().BGPNodeStates().Get(ctx, "node1", metav1.GetOptions{})
	must(t, err)
	if len(got.OwnerReferences) != 1 || got.OwnerReferences[0].UID != "uid-1" {
		t.Fatalf("owner references = %+v", got.OwnerReferences)
	}
	st := got.Status
	if len(st.Peers) != 2 || st.Peers[0].Name != "router" || st.Peers[0].State != "Established" ||
		st.Peers[0].EstablishedSince == nil || !st.Peers[0].EstablishedSince.Equal(&metav1.Time{Time: since}) || st.Peers[0].PrefixesSent != 1 {
		t.Fatalf("peers = %+v", st.Peers)
	}
	if st.Peers[1].Name != "secure" || !strings.Contains(st.Peers[1].LastError, "not found") {
		t.Fatalf("problem peer = %+v", st.Peers[1])
	}
	if st.Version != "v1.2.3" || st.Announced != (v1alpha1.PrefixCounts{IPv4: 10000, IPv6: 3}) ||
		!reflect.DeepEqual(st.Datapath, dp) || len(st.Errors) != v1alpha1.MaxNodeStateErrors || st.Errors[0] != "default/svc-00: announce: boom" {
		t.Fatalf("status = %+v", st)
	}

	crd.ClearActions()
	must(t, w.Sync(ctx))
	if n := len(crd.Actions()); n != 0 {
		t.Fatalf("unchanged sync made %d API calls", n)
	}
	sp.SetStatus(router, bgp.PeerStatus{State: "Active", LastError: "connect: connection refused"})
	ann.v4 = 9999
	must(t, w.Sync(ctx))
	got, err = crd.BgplbV1alpha1().BGPNodeStates().Get(ctx, "node1", metav1.GetOptions{})
	must(t, err)
	if got.Status.Peers[0].State != "Active" || got.Status.Peers[0].LastError != "connect: connection refused" ||
		got.Status.Peers[0].EstablishedSince != nil || got.Status.Announced.IPv4 != 9999 {
		t.Fatalf("status after session loss = %+v", got.Status)
	}
}

func TestAggregatorReasons(t *testing.T) {
	ctx := context.Background()
	idx := func() cache.Indexer {
		return cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	}
	services, states, peers, ads, pools, nodes, slicesIdx := idx(), idx(), idx(), idx(), idx(), idx(), idx()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", Generation: 2},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: ptr.To(v1alpha1.DefaultLoadBalancerClass),
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "203.0.113.10"}}}}}
	foreign := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "other"},
		Spec:   corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: ptr.To("example.com/x")},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "203.0.113.11"}}}}}
	kube := fake.NewSimpleClientset([]runtime.Object{svc, foreign}...)
	must(t, services.Add(svc))
	must(t, services.Add(foreign))
	for _, n := range []string{"node1", "node2"} {
		must(t, nodes.Add(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}))
	}
	slice := func(ready bool) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-1",
			Labels: map[string]string{discoveryv1.LabelServiceName: "web"}}, AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"198.19.1.5"}, NodeName: ptr.To("node1"),
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)}}}}
	}
	must(t, slicesIdx.Add(slice(true)))
	must(t, pools.Add(&v1alpha1.LoadBalancerIPPool{ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec: v1alpha1.LoadBalancerIPPoolSpec{Blocks: []v1alpha1.IPBlock{{CIDR: "203.0.113.0/24"}}}}))
	crd := crdfake.NewSimpleClientset(&v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "router"}})
	a := NewAggregator(kube, crd, AggregatorSources{
		Services: corelisters.NewServiceLister(services), NodeStates: bgplisters.NewBGPNodeStateLister(states),
		Nodes: corelisters.NewNodeLister(nodes),
		Slices: func(ns, name string) ([]*endpoints.Slice, error) {
			ss, err := discoverylisters.NewEndpointSliceLister(slicesIdx).EndpointSlices(ns).List(labels.Everything())
			return endpoints.FromEndpointSlices(ss...), err
		},
		Peers: bgplisters.NewBGPPeerLister(peers), Advertisements: bgplisters.NewBGPAdvertisementLister(ads),
		Pools: bgplisters.NewLoadBalancerIPPoolLister(pools),
	}, selectEvalFactory, v1alpha1.DefaultLoadBalancerClass, false)

	check := func(wantStatus metav1.ConditionStatus, wantReason, wantMsg string) {
		t.Helper()
		must(t, a.Sync(ctx, "default/web"))
		must(t, a.Sync(ctx, "default/other"))
		got, err := kube.CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
		must(t, err)
		c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionAnnounced)
		if c == nil || c.Status != wantStatus || c.Reason != wantReason || !strings.Contains(c.Message, wantMsg) || c.ObservedGeneration != 2 {
			t.Fatalf("condition = %+v, want %s %s containing %q", c, wantStatus, wantReason, wantMsg)
		}
		if wantStatus == metav1.ConditionTrue && strings.Contains(c.Message, "session") {
			t.Fatalf("Announced=True message %q carries session counts (any flap would rewrite it)", c.Message)
		}
		must(t, services.Update(got))
		o, err := kube.CoreV1().Services("default").Get(ctx, "other", metav1.GetOptions{})
		must(t, err)
		if len(o.Status.Conditions) != 0 {
			t.Fatal("wrote a condition on a foreign-class service")
		}
	}
	check(metav1.ConditionFalse, v1alpha1.ReasonNoPeers, "no BGPPeer")
	must(t, peers.Add(&v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "router"}}))
	nodeState := func(name, state string) {
		must(t, states.Update(&v1alpha1.BGPNodeState{ObjectMeta: metav1.ObjectMeta{Name: name},
			Status: v1alpha1.BGPNodeStateStatus{Peers: []v1alpha1.BGPPeerState{{Name: "router", Address: "198.18.0.1", State: state}}}}))
	}
	nodeState("node1", "Active")
	check(metav1.ConditionFalse, v1alpha1.ReasonSessionsDown, "0 of 1")
	nodeState("node1", "Established")
	check(metav1.ConditionFalse, v1alpha1.ReasonNoMatchingAdvertisement, "no BGPAdvertisement")
	// An advertisement whose peerSelector matches no BGPPeer does not count.
	must(t, ads.Add(&v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere"},
		Spec: v1alpha1.BGPAdvertisementSpec{PeerSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"site": "b"}}}}))
	check(metav1.ConditionFalse, v1alpha1.ReasonNoMatchingAdvertisement, "selects the service, its pool and a BGPPeer")
	must(t, ads.Add(&v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "all"}}))
	// ETP=Cluster: every node with a peer plans to announce; node2 has none yet.
	check(metav1.ConditionTrue, v1alpha1.ReasonAnnounced, "announced by 1 node(s) (node1)")
	nodeState("node1", "Active")
	check(metav1.ConditionFalse, v1alpha1.ReasonSessionsDown, "1 node(s) (node1) would announce it")
	nodeState("node1", "Established")
	nodeState("node2", "Established")
	check(metav1.ConditionTrue, v1alpha1.ReasonAnnounced, "announced by 2 node(s) (node1, node2)")

	// Unchanged: no write.
	kube.ClearActions()
	must(t, a.Sync(ctx, "default/web"))
	for _, act := range kube.Actions() {
		if act.GetVerb() == "update" {
			t.Fatalf("unchanged condition written again: %v", act)
		}
	}
	// The endpoint goes unready: no node is eligible.
	must(t, slicesIdx.Update(slice(false)))
	check(metav1.ConditionFalse, v1alpha1.ReasonNoEligibleEndpoints, "announced by 0 nodes")

	// Too many ports for the datapath: the Service's own problem, named on every node.
	must(t, slicesIdx.Update(slice(true)))
	wide, err := kube.CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
	must(t, err)
	for i := 0; i <= servicespec.MaxFrontends; i++ {
		wide.Spec.Ports = append(wide.Spec.Ports, corev1.ServicePort{Name: fmt.Sprint("p", i), Port: int32(1000 + i)})
	}
	_, err = kube.CoreV1().Services("default").Update(ctx, wide, metav1.UpdateOptions{})
	must(t, err)
	must(t, services.Update(wide))
	check(metav1.ConditionFalse, v1alpha1.ReasonTooManyFrontends, "257 datapath frontends")
}

func TestPeerConditions(t *testing.T) {
	ctx := context.Background()
	idx := func() cache.Indexer { return cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{}) }
	states, peers := idx(), idx()
	peer := &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "router"}}
	must(t, peers.Add(peer))
	crd := crdfake.NewSimpleClientset(peer)
	a := NewAggregator(fake.NewSimpleClientset(), crd, AggregatorSources{
		NodeStates: bgplisters.NewBGPNodeStateLister(states), Peers: bgplisters.NewBGPPeerLister(peers),
	}, selectEvalFactory, v1alpha1.DefaultLoadBalancerClass, false)
	set := func(name string, ps v1alpha1.BGPPeerState) {
		must(t, states.Update(&v1alpha1.BGPNodeState{ObjectMeta: metav1.ObjectMeta{Name: name},
			Status: v1alpha1.BGPNodeStateStatus{Peers: []v1alpha1.BGPPeerState{ps}}}))
	}
	get := func() (*metav1.Condition, *metav1.Condition) {
		p, err := crd.BgplbV1alpha1().BGPPeers().Get(ctx, "router", metav1.GetOptions{})
		must(t, err)
		must(t, peers.Update(p))
		return meta.FindStatusCondition(p.Status.Conditions, v1alpha1.PeerConditionEstablished),
			meta.FindStatusCondition(p.Status.Conditions, v1alpha1.PeerConditionInvalid)
	}
	set("node1", v1alpha1.BGPPeerState{Name: "router", Address: "198.18.0.1", State: "Established"})
	set("node2", v1alpha1.BGPPeerState{Name: "router", Address: "198.18.0.1", State: "Active", LastError: "connect: connection refused"})
	must(t, a.Sync(ctx, PeersKey))
	est, inv := get()
	if est == nil || est.Status != metav1.ConditionFalse || !strings.Contains(est.Message, "1 of 2") || !strings.Contains(est.Message, "connection refused") {
		t.Fatalf("Established = %+v", est)
	}
	if inv == nil || inv.Status != metav1.ConditionFalse {
		t.Fatalf("Invalid = %+v", inv)
	}
	set("node2", v1alpha1.BGPPeerState{Name: "router", State: "Idle", LastError: `passwordSecretRef: secret "x" not found`})
	must(t, a.Sync(ctx, PeersKey))
	est, inv = get()
	if est.Status != metav1.ConditionTrue || inv.Status != metav1.ConditionTrue || !strings.Contains(inv.Message, "node2: passwordSecretRef") {
		t.Fatalf("Established = %+v, Invalid = %+v", est, inv)
	}
	crd.ClearActions()
	must(t, a.Sync(ctx, PeersKey))
	if len(crd.Actions()) != 0 {
		t.Fatalf("unchanged peer status written: %v", crd.Actions())
	}
}

// TestNodeStateWriterRunWritesAtOnce: after a quiet spell a Trigger is written without
// waiting for the rate-limit interval; a burst right after waits for it.
func TestNodeStateWriterRunWritesAtOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	crd := crdfake.NewSimpleClientset()
	sp := bgptest.NewFake()
	must(t, sp.Start(ctx, bgp.Global{ASN: 64513, RouterID: netip.MustParseAddr("198.18.0.11"), ListenPort: -1}))
	ann := &fakeAnnounce{}
	const interval = time.Second
	w := NewNodeStateWriter(crd, "node1", sp, ann, NodeSource{}, func() *corev1.Node { return nil }, interval)
	go w.Run(ctx, time.Hour)
	written := func(v4 int32) func() bool {
		return func() bool {
			got, err := crd.BgplbV1alpha1().BGPNodeStates().Get(ctx, "node1", metav1.GetOptions{})
			return err == nil && got.Status.Announced.IPv4 == v4
		}
	}
	waitFor := func(what string, d time.Duration, ok func() bool) time.Duration {
		t.Helper()
		start := time.Now()
		poll.Eventually(t, d, 5*time.Millisecond, what+" written", ok)
		return time.Since(start)
	}
	waitFor("the first status", time.Second, written(0))
	time.Sleep(interval + 100*time.Millisecond) // quiet spell
	ann.setV4(1)
	w.Trigger()
	if d := waitFor("a change after a quiet spell", interval/2, written(1)); d > interval/4 {
		t.Errorf("a change after a quiet spell took %s", d)
	}
	ann.setV4(2)
	w.Trigger()
	if d := waitFor("a change right after a write", 2*interval, written(2)); d < interval/2 {
		t.Errorf("a change right after a write was written after %s, within the rate limit", d)
	}
}
