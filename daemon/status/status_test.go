package status

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/daemon/announce"
	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/bgp"
	"github.com/bgplb/bgplb/daemon/bgp/bgptest"
	crdfake "github.com/bgplb/bgplb/daemon/client/clientset/versioned/fake"
	bgplisters "github.com/bgplb/bgplb/daemon/client/listers/bgplb/v1alpha1"
)

type fakeAnnounce struct {
	prefixes []announce.Prefix
	problems []announce.PeerProblem
	gen      uint64 // bumped by the test with every change
	states   int    // State calls
}

func (f *fakeAnnounce) State() ([]announce.ServiceState, []announce.Prefix) {
	f.states++
	return nil, f.prefixes
}
func (f *fakeAnnounce) PeerProblems() []announce.PeerProblem { return f.problems }
func (f *fakeAnnounce) Generation() uint64                   { return f.gen }

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
	ann := &fakeAnnounce{
		prefixes: []announce.Prefix{{Prefix: netip.MustParsePrefix("203.0.113.10/32"), Services: []string{"default/web"}}},
		problems: []announce.PeerProblem{{Peer: "secure", Message: `passwordSecretRef: secret "x" not found`}},
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1", UID: "uid-1"}}
	w := NewNodeStateWriter(crd, "node1", sp, ann, func() *corev1.Node { return node }, time.Millisecond)
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
	if len(st.Prefixes) != 1 || st.Prefixes[0].Prefix != "203.0.113.10/32" || st.Prefixes[0].Services[0] != "default/web" ||
		len(st.Prefixes[0].Peers) != 1 {
		t.Fatalf("prefixes = %+v", st.Prefixes)
	}

	crd.ClearActions()
	states := ann.states
	must(t, w.Sync(ctx))
	if n := len(crd.Actions()); n != 0 {
		t.Fatalf("unchanged sync made %d API calls", n)
	}
	if ann.states != states {
		t.Fatal("unchanged sync read the announcer's state again (its generation did not move)")
	}
	// A prefix a peerSelector sends to another peer only lists no established peer.
	ann.prefixes = append(ann.prefixes, announce.Prefix{Prefix: netip.MustParsePrefix("203.0.113.11/32"),
		Services: []string{"default/db"}, Peers: []string{"other-router"}})
	ann.gen++
	must(t, w.Sync(ctx))
	got, err = crd.BgplbV1alpha1().BGPNodeStates().Get(ctx, "node1", metav1.GetOptions{})
	must(t, err)
	if ps := got.Status.Prefixes; len(ps) != 2 || len(ps[0].Peers) != 1 || ps[1].Prefix != "203.0.113.11/32" || len(ps[1].Peers) != 0 {
		t.Fatalf("prefixes = %+v, want the second one for no established peer", ps)
	}
	sp.SetStatus(router, bgp.PeerStatus{State: "Active", LastError: "connect: connection refused"})
	must(t, w.Sync(ctx))
	got, err = crd.BgplbV1alpha1().BGPNodeStates().Get(ctx, "node1", metav1.GetOptions{})
	must(t, err)
	if got.Status.Peers[0].State != "Active" || got.Status.Peers[0].LastError != "connect: connection refused" || got.Status.Peers[0].EstablishedSince != nil {
		t.Fatalf("peer after session loss = %+v", got.Status.Peers[0])
	}
	// Same generation, but the established peers changed: the prefixes go to nobody now.
	if ps := got.Status.Prefixes; len(ps) != 2 || len(ps[0].Peers) != 0 {
		t.Fatalf("prefixes after session loss = %+v, want them sent to no peer", ps)
	}
}

func TestAggregatorReasons(t *testing.T) {
	ctx := context.Background()
	idx := func() cache.Indexer {
		return cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	}
	services, states, peers, ads, pools := idx(), idx(), idx(), idx(), idx()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", Generation: 2},
		Spec:   corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: ptr.To(v1alpha1.DefaultLoadBalancerClass)},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "203.0.113.10"}}}}}
	foreign := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "other"},
		Spec:   corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: ptr.To("example.com/x")},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "203.0.113.11"}}}}}
	kube := fake.NewSimpleClientset([]runtime.Object{svc, foreign}...)
	must(t, services.Add(svc))
	must(t, services.Add(foreign))
	must(t, pools.Add(&v1alpha1.LoadBalancerIPPool{ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec: v1alpha1.LoadBalancerIPPoolSpec{Blocks: []v1alpha1.IPBlock{{CIDR: "203.0.113.0/24"}}}}))
	crd := crdfake.NewSimpleClientset(&v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "router"}})
	a := NewAggregator(kube, crd, AggregatorSources{
		Services: corelisters.NewServiceLister(services), NodeStates: states,
		Peers: bgplisters.NewBGPPeerLister(peers), Advertisements: bgplisters.NewBGPAdvertisementLister(ads),
		Pools: bgplisters.NewLoadBalancerIPPoolLister(pools),
	}, v1alpha1.DefaultLoadBalancerClass, false)

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
		must(t, services.Update(got))
		o, err := kube.CoreV1().Services("default").Get(ctx, "other", metav1.GetOptions{})
		must(t, err)
		if len(o.Status.Conditions) != 0 {
			t.Fatal("wrote a condition on a foreign-class service")
		}
	}
	check(metav1.ConditionFalse, announce.ReasonNoPeers, "no BGPPeer")
	must(t, peers.Add(&v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "router"}}))
	nodeState := func(name, rv, state string, prefixes ...v1alpha1.AnnouncedPrefix) {
		must(t, states.Update(SummarizeNodeState(&v1alpha1.BGPNodeState{ObjectMeta: metav1.ObjectMeta{Name: name, ResourceVersion: rv},
			Status: v1alpha1.BGPNodeStateStatus{Peers: []v1alpha1.BGPPeerState{{Name: "router", Address: "198.18.0.1", State: state}}, Prefixes: prefixes}})))
	}
	nodeState("node1", "1", "Active")
	check(metav1.ConditionFalse, announce.ReasonSessionsDown, "0 of 1")
	nodeState("node1", "2", "Established")
	check(metav1.ConditionFalse, announce.ReasonNoMatchingAdvertisement, "no BGPAdvertisement")
	// An advertisement whose peerSelector matches no BGPPeer does not count.
	must(t, ads.Add(&v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere"},
		Spec: v1alpha1.BGPAdvertisementSpec{PeerSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"site": "b"}}}}))
	check(metav1.ConditionFalse, announce.ReasonNoMatchingAdvertisement, "selects the service, its pool and a BGPPeer")
	must(t, ads.Add(&v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "all"}}))
	check(metav1.ConditionFalse, announce.ReasonNoEligibleEndpoints, "announced by 0 nodes")
	nodeState("node1", "3", "Active", v1alpha1.AnnouncedPrefix{Prefix: "203.0.113.10/32", Services: []string{"default/web"}})
	check(metav1.ConditionFalse, announce.ReasonSessionsDown, "1 node(s) (node1) would announce it but have no established BGP session")
	nodeState("node1", "4", "Established", v1alpha1.AnnouncedPrefix{Prefix: "203.0.113.10/32", Services: []string{"default/web"}, Peers: []string{"router"}})
	nodeState("node2", "1", "Established", v1alpha1.AnnouncedPrefix{Prefix: "203.0.113.10/32", Services: []string{"default/web"}, Peers: []string{"router"}})
	check(metav1.ConditionTrue, announce.ReasonAnnounced, "announced by 2 node(s) (node1, node2); 2 of 2")

	// Unchanged: no write.
	kube.ClearActions()
	must(t, a.Sync(ctx, "default/web"))
	for _, act := range kube.Actions() {
		if act.GetVerb() == "update" {
			t.Fatalf("unchanged condition written again: %v", act)
		}
	}
}

func TestPeerConditions(t *testing.T) {
	ctx := context.Background()
	idx := func() cache.Indexer { return cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{}) }
	states, peers := idx(), idx()
	peer := &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "router"}}
	must(t, peers.Add(peer))
	crd := crdfake.NewSimpleClientset(peer)
	a := NewAggregator(fake.NewSimpleClientset(), crd, AggregatorSources{
		NodeStates: states, Peers: bgplisters.NewBGPPeerLister(peers),
	}, v1alpha1.DefaultLoadBalancerClass, false)
	set := func(name string, ps v1alpha1.BGPPeerState) {
		must(t, states.Update(SummarizeNodeState(&v1alpha1.BGPNodeState{ObjectMeta: metav1.ObjectMeta{Name: name},
			Status: v1alpha1.BGPNodeStateStatus{Peers: []v1alpha1.BGPPeerState{ps}}})))
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
