package announce

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/bgp"
	bgplisters "github.com/bgplb/bgplb/daemon/client/listers/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/datapath"
	"github.com/bgplb/bgplb/daemon/eligibility"
	"github.com/bgplb/bgplb/daemon/eligibility/endpoints"
	"github.com/bgplb/bgplb/daemon/peers"
)

const node = "node1"

// journal records every side effect in order.
type journal struct {
	mu  sync.Mutex
	ops []string
}

func (j *journal) add(s string) { j.mu.Lock(); j.ops = append(j.ops, s); j.mu.Unlock() }
func (j *journal) take() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := j.ops
	j.ops = nil
	return out
}

type fakeSpeaker struct {
	j         *journal
	mu        sync.Mutex
	paths     map[netip.Prefix]bgp.Path
	peers     []bgp.PeerConfig
	allowed   []netip.Prefix
	failNext  error
	announces int
}

func (f *fakeSpeaker) SetPeers(_ context.Context, peers []bgp.PeerConfig) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.peers = peers
	return nil
}
func (f *fakeSpeaker) SetAllowedPrefixes(_ context.Context, allowed []netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.allowed = allowed
	return nil
}
func (f *fakeSpeaker) Announce(_ context.Context, p bgp.Path) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failNext; err != nil {
		f.failNext = nil
		return err
	}
	if f.allowed != nil && !slices.ContainsFunc(f.allowed, func(a netip.Prefix) bool { return a.Overlaps(p.Prefix) && a.Bits() <= p.Prefix.Bits() }) {
		return bgp.ErrPrefixNotAllowed
	}
	f.paths[p.Prefix] = p
	f.announces++
	f.j.add("announce " + p.Prefix.String())
	return nil
}
func (f *fakeSpeaker) Withdraw(_ context.Context, prefix netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failNext; err != nil {
		f.failNext = nil
		return err
	}
	delete(f.paths, prefix)
	f.j.add("withdraw " + prefix.String())
	return nil
}

type fakeDatapath struct {
	j        *journal
	services map[string]*datapath.ServiceBackends
}

func (f *fakeDatapath) SetService(_ context.Context, key string, d *datapath.ServiceBackends) error {
	if d == nil {
		delete(f.services, key)
		f.j.add("datapath delete " + key)
		return nil
	}
	f.services[key] = d
	f.j.add(fmt.Sprintf("datapath set %s newflow=%d", key, len(d.NewFlow)))
	return nil
}

// selectEvaluator decides with the real shared predicate, without plugins: in scope when
// the Service has our class.
type selectEvaluator struct{}

func (selectEvaluator) Evaluate(_ context.Context, in *eligibility.Input) (eligibility.Decision, error) {
	if ptr.Deref(in.Service.Spec.LoadBalancerClass, "") != v1alpha1.DefaultLoadBalancerClass {
		return eligibility.Decision{Reason: "NotOurClass"}, nil
	}
	sel := eligibility.SelectEndpoints(in.Service.Spec.ExternalTrafficPolicy, node, in.Slices, nil)
	d := eligibility.Decision{InScope: true, Announce: sel.Announce, Endpoints: sel.Keep, NewFlowEndpoints: sel.NewFlow,
		Weight: int64(len(sel.NewFlow))}
	if !sel.Announce {
		d.Reason = "NoEligibleEndpoints"
	}
	return d, nil
}

type fixture struct {
	t        *testing.T
	j        *journal
	speaker  *fakeSpeaker
	dp       *fakeDatapath
	a        *Announcer
	rec      *peers.Reconciler
	resyncs  int // OnPeersChanged calls
	services cache.Indexer
	slices   cache.Indexer
	pools    cache.Indexer
	peers    cache.Indexer
	adverts  cache.Indexer
	secrets  cache.Indexer
	node     *corev1.Node
}

func newFixture(t *testing.T) *fixture {
	idx := func() cache.Indexer {
		return cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	}
	slicesIdx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{"svc": func(obj any) ([]string, error) {
		s := obj.(*discoveryv1.EndpointSlice)
		return []string{s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName]}, nil
	}})
	f := &fixture{t: t, j: &journal{}, services: idx(), slices: slicesIdx, pools: idx(), peers: idx(), adverts: idx(), secrets: idx(),
		node: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node, Labels: map[string]string{"rack": "a"}}}}
	f.speaker = &fakeSpeaker{j: f.j, paths: map[netip.Prefix]bgp.Path{}}
	f.dp = &fakeDatapath{j: f.j, services: map[string]*datapath.ServiceBackends{}}
	src := Sources{
		Services: corelisters.NewServiceLister(f.services),
		Slices: func(ns, name string) ([]*endpoints.Slice, error) {
			objs, err := f.slices.ByIndex("svc", ns+"/"+name)
			var out []*endpoints.Slice
			for _, o := range objs {
				out = append(out, endpoints.FromEndpointSlice(o.(*discoveryv1.EndpointSlice)))
			}
			return out, err
		},
		Node:           func() *corev1.Node { return f.node },
		Pools:          bgplisters.NewLoadBalancerIPPoolLister(f.pools),
		Advertisements: bgplisters.NewBGPAdvertisementLister(f.adverts),
	}
	// The real peers reconciler, wired as daemon/app wires it.
	f.rec = peers.New(peers.Sources{
		Node:    src.Node,
		Pools:   src.Pools,
		Peers:   bgplisters.NewBGPPeerLister(f.peers),
		Secrets: corelisters.NewSecretLister(f.secrets).Secrets("bgplb-system"),
	}, f.speaker)
	f.a = New(src, selectEvaluator{}, f.speaker, f.rec, f.dp)
	f.rec.OnPeersChanged(func(ctx context.Context) error {
		f.resyncs++
		return f.a.PeersChanged(ctx)
	})
	f.rec.SkipPrefixes(f.a.Announced)
	must(t, f.pools.Add(&v1alpha1.LoadBalancerIPPool{ObjectMeta: metav1.ObjectMeta{Name: "pool", Labels: map[string]string{"tier": "web"}},
		Spec: v1alpha1.LoadBalancerIPPoolSpec{Blocks: []v1alpha1.IPBlock{{CIDR: "203.0.113.0/24"}}}}))
	return f
}

func (f *fixture) poolMeta() metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: "pool", Labels: map[string]string{"tier": "web"}}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) service(name, ip string, policy corev1.ServiceExternalTrafficPolicy) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: ptr.To(v1alpha1.DefaultLoadBalancerClass),
			ExternalTrafficPolicy: policy, Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
	}
	if ip != "" {
		svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
	}
	must(f.t, f.services.Update(svc))
}

// endpoints sets the Service's slice to one endpoint per (ip, node, ready) triple.
func (f *fixture) endpoints(svc string, eps ...[3]string) {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: svc + "-abc", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	for _, e := range eps {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{e[0]}, NodeName: ptr.To(e[1]),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(e[2] == "ready")}})
	}
	must(f.t, f.slices.Update(s))
}

func (f *fixture) advert(name string, spec v1alpha1.BGPAdvertisementSpec) {
	must(f.t, f.adverts.Update(&v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}))
}

func (f *fixture) sync(key string) {
	f.t.Helper()
	must(f.t, f.a.SyncService(context.Background(), key))
}

func (f *fixture) syncPeers() {
	f.t.Helper()
	must(f.t, f.rec.Sync(context.Background(), peers.Key))
}

func (f *fixture) announced() []string {
	f.speaker.mu.Lock()
	defer f.speaker.mu.Unlock()
	var out []string
	for p := range f.speaker.paths {
		out = append(out, p.String())
	}
	return out
}

var vip = netip.MustParsePrefix("203.0.113.10/32")

func TestLocalPolicyAnnouncesOnlyWithReadyLocalEndpoint(t *testing.T) {
	f := newFixture(t)
	f.advert("all", v1alpha1.BGPAdvertisementSpec{})
	f.service("web", "203.0.113.10", corev1.ServiceExternalTrafficPolicyLocal)
	f.endpoints("web", [3]string{"198.19.2.5", "node2", "ready"})
	f.sync("default/web")
	if got := f.announced(); len(got) != 0 {
		t.Fatalf("announced %v with no local endpoint", got)
	}
	states, _ := f.a.State()
	if len(states) != 1 || states[0].Reason != v1alpha1.ReasonNoEligibleEndpoints {
		t.Fatalf("state = %+v, want NoEligibleEndpoints", states)
	}

	f.j.take()
	f.endpoints("web", [3]string{"198.19.2.5", "node2", "ready"}, [3]string{"198.19.1.5", node, "ready"})
	f.sync("default/web")
	if got := f.announced(); !reflect.DeepEqual(got, []string{"203.0.113.10/32"}) {
		t.Fatalf("announced %v, want the VIP", got)
	}
	// The datapath must be programmed before the route is announced.
	if ops := f.j.take(); !reflect.DeepEqual(ops, []string{"datapath set default/web newflow=1", "announce 203.0.113.10/32"}) {
		t.Fatalf("ops = %q", ops)
	}

	// Local endpoint becomes unready: withdraw first, then update the datapath.
	f.endpoints("web", [3]string{"198.19.2.5", "node2", "ready"}, [3]string{"198.19.1.5", node, "unready"})
	f.sync("default/web")
	if ops := f.j.take(); !reflect.DeepEqual(ops, []string{"withdraw 203.0.113.10/32", "datapath set default/web newflow=0"}) {
		t.Fatalf("ops = %q", ops)
	}

	// Service deleted: datapath entry removed, nothing tracked.
	must(t, f.services.Delete(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"}}))
	f.sync("default/web")
	if ops := f.j.take(); !reflect.DeepEqual(ops, []string{"datapath delete default/web"}) {
		t.Fatalf("ops = %q", ops)
	}
	if states, prefixes := f.a.State(); len(states) != 0 || len(prefixes) != 0 {
		t.Fatalf("state after delete = %+v %+v", states, prefixes)
	}
}

func TestClusterPolicyAnnouncesWhileAnyEndpointExists(t *testing.T) {
	f := newFixture(t)
	f.advert("all", v1alpha1.BGPAdvertisementSpec{})
	f.service("web", "203.0.113.10", corev1.ServiceExternalTrafficPolicyCluster)
	f.endpoints("web", [3]string{"198.19.2.5", "node2", "ready"})
	f.sync("default/web")
	if got := f.announced(); len(got) != 1 {
		t.Fatalf("Cluster with a remote endpoint: announced %v", got)
	}
	f.endpoints("web")
	f.sync("default/web")
	if got := f.announced(); len(got) != 0 {
		t.Fatalf("Cluster with zero endpoints: announced %v", got)
	}
}

func TestForeignClassIsIgnored(t *testing.T) {
	f := newFixture(t)
	f.advert("all", v1alpha1.BGPAdvertisementSpec{})
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "other"},
		Spec:   corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: ptr.To("example.com/other")},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "203.0.113.11"}}}}}
	must(t, f.services.Add(svc))
	f.endpoints("other", [3]string{"198.19.1.5", node, "ready"})
	f.sync("default/other")
	if ops := f.j.take(); len(ops) != 0 {
		t.Fatalf("foreign service caused %q", ops)
	}
	if states, _ := f.a.State(); len(states) != 0 {
		t.Fatalf("foreign service tracked: %+v", states)
	}
}

func TestSharedVIPIsRefcounted(t *testing.T) {
	f := newFixture(t)
	f.advert("all", v1alpha1.BGPAdvertisementSpec{WeightedECMP: true})
	f.service("a", "203.0.113.10", corev1.ServiceExternalTrafficPolicyLocal)
	f.service("b", "203.0.113.10", corev1.ServiceExternalTrafficPolicyLocal)
	f.endpoints("a", [3]string{"198.19.1.5", node, "ready"})
	f.endpoints("b", [3]string{"198.19.1.6", node, "ready"}, [3]string{"198.19.1.7", node, "ready"})
	f.sync("default/a")
	f.sync("default/b")
	if bw := f.speaker.paths[vip].LinkBandwidth; bw == nil || *bw != 3*BytesPerWeight {
		t.Fatalf("merged link bandwidth = %v, want %d (1+2 endpoints)", bw, 3*BytesPerWeight)
	}
	_, prefixes := f.a.State()
	if len(prefixes) != 1 || !reflect.DeepEqual(prefixes[0].Services, []string{"default/a", "default/b"}) {
		t.Fatalf("prefixes = %+v", prefixes)
	}
	f.j.take()
	f.endpoints("a")
	f.sync("default/a")
	if _, ok := f.speaker.paths[vip]; !ok {
		t.Fatal("VIP withdrawn while service b still wants it")
	}
	if bw := f.speaker.paths[vip].LinkBandwidth; bw == nil || *bw != 2*BytesPerWeight {
		t.Fatalf("link bandwidth after a left = %v, want %d", bw, 2*BytesPerWeight)
	}
	f.endpoints("b")
	f.sync("default/b")
	if _, ok := f.speaker.paths[vip]; ok {
		t.Fatal("VIP still announced after both services lost their endpoints")
	}
}

func TestAdvertisementSelectorsAndAttributes(t *testing.T) {
	f := newFixture(t)
	f.advert("other-pool", v1alpha1.BGPAdvertisementSpec{PoolSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "db"}}})
	f.service("web", "203.0.113.10", corev1.ServiceExternalTrafficPolicyLocal)
	f.endpoints("web", [3]string{"198.19.1.5", node, "ready"})
	f.sync("default/web")
	states, _ := f.a.State()
	if len(f.announced()) != 0 || states[0].Reason != v1alpha1.ReasonNoMatchingAdvertisement {
		t.Fatalf("announced %v, state %+v; want NoMatchingAdvertisement", f.announced(), states)
	}
	f.advert("other-rack", v1alpha1.BGPAdvertisementSpec{NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"rack": "b"}}})
	f.sync("default/web")
	if len(f.announced()) != 0 {
		t.Fatal("announced through an advertisement whose nodeSelector does not match")
	}
	f.advert("web", v1alpha1.BGPAdvertisementSpec{
		ServiceSelector:  &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		PoolSelector:     &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}},
		Communities:      []v1alpha1.Community{"64512:100", "no-export"},
		LargeCommunities: []v1alpha1.LargeCommunity{"64512:1:2"},
		LocalPreference:  ptr.To[int64](200),
	})
	f.sync("default/web")
	p, ok := f.speaker.paths[vip]
	if !ok {
		t.Fatal("not announced with a matching advertisement")
	}
	want := bgp.Path{Prefix: vip, Communities: []uint32{64512<<16 | 100, 0xFFFFFF01},
		LargeCommunities: []bgp.LargeCommunity{{GlobalAdmin: 64512, LocalData1: 1, LocalData2: 2}}, LocalPref: ptr.To[uint32](200)}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("path = %+v, want %+v", p, want)
	}
	// Attribute change re-announces.
	f.advert("web", v1alpha1.BGPAdvertisementSpec{LocalPreference: ptr.To[int64](300)})
	f.sync("default/web")
	if lp := f.speaker.paths[vip].LocalPref; lp == nil || *lp != 300 {
		t.Fatalf("local pref = %v after change", lp)
	}
}

func TestFailedAnnounceIsRetriedWithoutLosingState(t *testing.T) {
	f := newFixture(t)
	f.advert("all", v1alpha1.BGPAdvertisementSpec{})
	f.service("web", "203.0.113.10", corev1.ServiceExternalTrafficPolicyLocal)
	f.endpoints("web", [3]string{"198.19.1.5", node, "ready"})
	f.speaker.failNext = errors.New("boom")
	if err := f.a.SyncService(context.Background(), "default/web"); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Sync err = %v, want the speaker error", err)
	}
	if _, prefixes := f.a.State(); len(prefixes) != 0 {
		t.Fatalf("bookkeeping records %v although the announce failed", prefixes)
	}
	f.sync("default/web")
	if len(f.announced()) != 1 {
		t.Fatal("retry did not announce")
	}
	n := f.speaker.announces
	f.sync("default/web")
	if f.speaker.announces != n {
		t.Fatal("an unchanged sync announced again")
	}
}

func TestIPOutsidePoolsIsNotAnnounced(t *testing.T) {
	f := newFixture(t)
	f.advert("all", v1alpha1.BGPAdvertisementSpec{})
	f.service("web", "198.51.100.77", corev1.ServiceExternalTrafficPolicyLocal)
	f.endpoints("web", [3]string{"198.19.1.5", node, "ready"})
	f.sync("default/web")
	states, _ := f.a.State()
	if len(f.announced()) != 0 || len(states) != 1 || states[0].Reason != v1alpha1.ReasonIPOutsidePools {
		t.Fatalf("announced %v, state %+v; want nothing and IPOutsidePools", f.announced(), states)
	}
}

func TestNewPoolIsAllowedWithoutWaitingForThePeerSync(t *testing.T) {
	f := newFixture(t)
	f.advert("all", v1alpha1.BGPAdvertisementSpec{})
	f.syncPeers() // allowed = 203.0.113.0/24
	must(t, f.pools.Add(&v1alpha1.LoadBalancerIPPool{ObjectMeta: metav1.ObjectMeta{Name: "v6"},
		Spec: v1alpha1.LoadBalancerIPPoolSpec{Blocks: []v1alpha1.IPBlock{{CIDR: "2001:db8:ffff::/112"}}}}))
	f.service("web", "2001:db8:ffff::10", corev1.ServiceExternalTrafficPolicyCluster)
	f.endpoints("web", [3]string{"198.19.1.5", node, "ready"})
	f.sync("default/web")
	if got := f.announced(); !reflect.DeepEqual(got, []string{"2001:db8:ffff::10/128"}) {
		t.Fatalf("announced %v", got)
	}
}

func TestEveryCommunityTheCRDAllowsParses(t *testing.T) {
	for _, c := range []string{"no-export", "no-advertise", "no-export-subconfed", "local-as", "no-peer", "blackhole",
		"graceful-shutdown", "accept-own", "llgr-stale", "no-llgr", "65535:65535", "0:0"} {
		if _, err := parseCommunity(c); err != nil {
			t.Errorf("community %q: %v", c, err)
		}
	}
	if v, _ := parseCommunity("blackhole"); v != 0xFFFF029A {
		t.Errorf("blackhole = %#x", v)
	}
	if _, err := parseCommunity("65536:1"); err == nil {
		t.Error("65536:1 accepted")
	}
}
