package status

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/daemon/announce"
	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/bgp"
	"github.com/bgplb/bgplb/daemon/bgp/bgptest"
	crdfake "github.com/bgplb/bgplb/daemon/client/clientset/versioned/fake"
	bgplisters "github.com/bgplb/bgplb/daemon/client/listers/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/eligibility/endpoints"
	"github.com/bgplb/bgplb/daemon/peers"
)

// maxNodeStateBytes is the budget of one BGPNodeState's JSON (docs/design.md).
const maxNodeStateBytes = 16 << 10

// TestNodeStateSizeAt10kServices: a node announcing 10k ETP=Cluster Services (every node
// carries every VIP) to four established peers, through the real announcer, writes a
// BGPNodeState whose JSON stays within 16 KB.
func TestNodeStateSizeAt10kServices(t *testing.T) {
	const services = 10000
	ctx := context.Background()
	idx := func() cache.Indexer {
		return cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	}
	svcs, pools, peerIdx, ads := idx(), idx(), idx(), idx()
	slicesIdx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{"svc": func(obj any) ([]string, error) {
		s := obj.(*discoveryv1.EndpointSlice)
		return []string{s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName]}, nil
	}})
	must(t, pools.Add(&v1alpha1.LoadBalancerIPPool{ObjectMeta: metav1.ObjectMeta{Name: "scale"},
		Spec: v1alpha1.LoadBalancerIPPoolSpec{Blocks: []v1alpha1.IPBlock{{CIDR: "198.18.128.0/17"}}}}))
	must(t, ads.Add(&v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "all"}}))
	for i := range 4 {
		must(t, peerIdx.Add(&v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("router-%d", i)},
			Spec: v1alpha1.BGPPeerSpec{LocalASN: 64513, PeerASN: 64512, PeerAddress: fmt.Sprintf("198.18.0.%d", i+1)}}))
	}
	base := netip.MustParseAddr("198.18.128.0")
	vip := base
	for i := range services {
		vip = vip.Next()
		name := fmt.Sprintf("svc-%05d", i)
		must(t, svcs.Add(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "scale", Name: name},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: ptr.To(v1alpha1.DefaultLoadBalancerClass),
				ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster, Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}}},
			Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: vip.String()}}}}}))
		must(t, slicesIdx.Add(&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "scale", Name: name + "-1",
			Labels: map[string]string{discoveryv1.LabelServiceName: name}}, AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"198.19.1.5"}, NodeName: ptr.To("node2"),
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}}}))
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"}}
	sp := bgptest.NewFake()
	must(t, sp.Start(ctx, bgp.Global{ASN: 64513, RouterID: netip.MustParseAddr("198.18.0.11"), ListenPort: -1}))
	rec := peers.New(peers.Sources{
		Node:  func() *corev1.Node { return node },
		Pools: bgplisters.NewLoadBalancerIPPoolLister(pools),
		Peers: bgplisters.NewBGPPeerLister(peerIdx),
	}, sp)
	ann := announce.New(announce.Sources{
		Services: corelisters.NewServiceLister(svcs),
		Slices: func(ns, name string) ([]*endpoints.Slice, error) {
			objs, err := slicesIdx.ByIndex("svc", ns+"/"+name)
			out := make([]*endpoints.Slice, 0, len(objs))
			for _, o := range objs {
				out = append(out, endpoints.FromEndpointSlice(o.(*discoveryv1.EndpointSlice)))
			}
			return out, err
		},
		Node:           func() *corev1.Node { return node },
		Pools:          bgplisters.NewLoadBalancerIPPoolLister(pools),
		Advertisements: bgplisters.NewBGPAdvertisementLister(ads),
	}, selectEval{node: "node1"}, sp, rec, nil)
	must(t, rec.Sync(ctx, peers.Key))
	for i := range 4 {
		sp.SetStatus(netip.MustParseAddr(fmt.Sprintf("198.18.0.%d", i+1)), bgp.PeerStatus{State: bgp.StateEstablished,
			EstablishedSince: time.Now(), PrefixesSent: services})
	}
	for i := range services {
		must(t, ann.SyncService(ctx, fmt.Sprintf("scale/svc-%05d", i)))
	}
	var errs Errors
	for i := range 50 { // more failing Services than the status lists
		errs.Record(fmt.Sprintf("scale/svc-%05d", i), fmt.Errorf("announce %s: speaker refused", base))
	}
	crd := crdfake.NewSimpleClientset()
	w := NewNodeStateWriter(crd, "node1", sp, ann, NodeSource{Version: "v0.0.0-test", Errors: errs.List,
		Datapath: func() *v1alpha1.DatapathSummary {
			s := &v1alpha1.DatapathSummary{Endpoints: 110, NotReady: 100}
			for i := range v1alpha1.MaxNotReadyPods {
				s.NotReadyPods = append(s.NotReadyPods, fmt.Sprintf("scale/backend-%05d-abcdefghij", i))
			}
			return s
		}}, func() *corev1.Node { return node }, time.Millisecond)
	must(t, w.Sync(ctx))
	got, err := crd.BgplbV1alpha1().BGPNodeStates().Get(ctx, "node1", metav1.GetOptions{})
	must(t, err)
	if got.Status.Announced.IPv4 != services || len(got.Status.Peers) != 4 {
		t.Fatalf("status = %+v, want %d IPv4 prefixes to 4 peers", got.Status, services)
	}
	b, err := json.Marshal(got)
	must(t, err)
	t.Logf("BGPNodeState at %d Services (ETP=Cluster), 4 peers, %d errors, %d not-ready pods: %d bytes of JSON",
		services, len(got.Status.Errors), len(got.Status.Datapath.NotReadyPods), len(b))
	if len(b) > maxNodeStateBytes {
		t.Fatalf("BGPNodeState is %d bytes of JSON, budget %d", len(b), maxNodeStateBytes)
	}
}
