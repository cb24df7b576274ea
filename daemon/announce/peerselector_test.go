package announce

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/bgp"
)

var (
	peerA = netip.MustParseAddr("198.18.0.1")
	peerB = netip.MustParseAddr("198.18.0.2")
	peerC = netip.MustParseAddr("198.18.0.3")
)

// peer creates or updates a BGPPeer selecting every node.
func (f *fixture) peer(name string, addr netip.Addr, labels map[string]string) {
	must(f.t, f.peers.Update(&v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: v1alpha1.BGPPeerSpec{LocalASN: 64513, PeerASN: 64512, PeerAddress: addr.String()}}))
}

// sentTo returns what the peer at addr receives for prefix, and whether it receives it.
func (f *fixture) sentTo(addr netip.Addr, prefix netip.Prefix) (bgp.Attributes, bool) {
	f.speaker.mu.Lock()
	defer f.speaker.mu.Unlock()
	p, ok := f.speaker.paths[prefix]
	if !ok {
		return bgp.Attributes{}, false
	}
	return p.For(addr)
}

func role(r string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{"role": r}}
}

func comm(t *testing.T, s string) uint32 {
	t.Helper()
	c, err := bgp.ParseCommunity(s)
	must(t, err)
	return c
}

func TestPeerSelectorSendsOnlyToSelectedPeersWithTheirAttributes(t *testing.T) {
	f := newFixture(t)
	f.peer("a", peerA, map[string]string{"role": "a"})
	f.peer("b", peerB, map[string]string{"role": "b"})
	f.syncPeers()
	f.service("web", "203.0.113.10", corev1.ServiceExternalTrafficPolicyLocal)
	f.endpoints("web", [3]string{"198.19.1.5", node, "ready"})

	f.advert("to-a", v1alpha1.BGPAdvertisementSpec{PeerSelector: role("a"), Communities: []v1alpha1.Community{"64512:1"}})
	f.sync("default/web")
	if got, ok := f.sentTo(peerA, vip); !ok || !slices.Equal(got.Communities, []uint32{comm(t, "64512:1")}) {
		t.Fatalf("peer a gets %+v, %t; want the VIP with 64512:1", got, ok)
	}
	if got, ok := f.sentTo(peerB, vip); ok {
		t.Fatalf("peer b gets %+v; no advertisement selects it", got)
	}
	_, prefixes := f.a.State()
	if len(prefixes) != 1 || !reflect.DeepEqual(prefixes[0].Peers, []string{"a"}) {
		t.Fatalf("prefixes = %+v, want the VIP for peer a only", prefixes)
	}

	// A second advertisement for b with other attributes; one for every peer adds to both.
	f.advert("to-b", v1alpha1.BGPAdvertisementSpec{PeerSelector: role("b"), Communities: []v1alpha1.Community{"64512:2"},
		LocalPreference: ptr.To[int64](300), WeightedECMP: true})
	f.advert("all", v1alpha1.BGPAdvertisementSpec{LargeCommunities: []v1alpha1.LargeCommunity{"64513:0:1"}})
	f.sync("default/web")
	a, okA := f.sentTo(peerA, vip)
	b, okB := f.sentTo(peerB, vip)
	lc := []bgp.LargeCommunity{{GlobalAdmin: 64513, LocalData1: 0, LocalData2: 1}}
	if !okA || !slices.Equal(a.Communities, []uint32{comm(t, "64512:1")}) || !slices.Equal(a.LargeCommunities, lc) ||
		a.LocalPref != nil || a.LinkBandwidth != nil {
		t.Fatalf("peer a gets %+v, %t", a, okA)
	}
	if !okB || !slices.Equal(b.Communities, []uint32{comm(t, "64512:2")}) || !slices.Equal(b.LargeCommunities, lc) ||
		b.LocalPref == nil || *b.LocalPref != 300 || b.LinkBandwidth == nil || *b.LinkBandwidth != BytesPerWeight {
		t.Fatalf("peer b gets %+v, %t", b, okB)
	}
	_, prefixes = f.a.State()
	if !reflect.DeepEqual(prefixes[0].Peers, []string{"a", "b"}) {
		t.Fatalf("prefix peers = %v", prefixes[0].Peers)
	}

	// Only advertisements without peerSelector: one path for every peer, as before.
	must(t, f.adverts.Delete(&v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "to-a"}}))
	must(t, f.adverts.Delete(&v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "to-b"}}))
	f.advert("empty-selector", v1alpha1.BGPAdvertisementSpec{PeerSelector: &metav1.LabelSelector{}})
	f.sync("default/web")
	if p := f.speaker.paths[vip]; p.PeerAttributes != nil || !slices.Equal(p.LargeCommunities, lc) {
		t.Fatalf("path = %+v, want one for every peer", p)
	}
	if _, prefixes = f.a.State(); prefixes[0].Peers != nil {
		t.Fatalf("prefix peers = %v, want nil (every peer)", prefixes[0].Peers)
	}
}

func TestPeerSelectorMatchingNoPeerIsNotAnnounced(t *testing.T) {
	f := newFixture(t)
	f.peer("a", peerA, map[string]string{"role": "a"})
	f.syncPeers()
	f.service("web", "203.0.113.10", corev1.ServiceExternalTrafficPolicyLocal)
	f.endpoints("web", [3]string{"198.19.1.5", node, "ready"})
	f.advert("to-edge", v1alpha1.BGPAdvertisementSpec{PeerSelector: role("edge")})
	f.advert("invalid", v1alpha1.BGPAdvertisementSpec{PeerSelector: &metav1.LabelSelector{
		MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "role", Operator: "Bogus"}}}})
	f.sync("default/web")
	states, _ := f.a.State()
	if len(f.announced()) != 0 || len(states) != 1 || states[0].Reason != v1alpha1.ReasonNoMatchingAdvertisement ||
		!strings.Contains(states[0].Message, "peerSelector") {
		t.Fatalf("announced %v, states %+v; want nothing and NoMatchingAdvertisement naming the peerSelector", f.announced(), states)
	}
}

func TestPeerLabelChangeMovesRoutesWithoutTouchingSessions(t *testing.T) {
	f := newFixture(t)
	f.peer("a", peerA, map[string]string{"role": "edge"})
	f.peer("b", peerB, nil)
	f.service("web", "203.0.113.10", corev1.ServiceExternalTrafficPolicyLocal)
	f.endpoints("web", [3]string{"198.19.1.5", node, "ready"})
	f.advert("to-edge", v1alpha1.BGPAdvertisementSpec{PeerSelector: role("edge")})

	// On start the daemon syncs the Services before the peers: the routes already use the
	// peers the first peer sync configures, which then sees no change.
	f.sync("default/web")
	if _, ok := f.sentTo(peerA, vip); !ok {
		t.Fatal("peer a does not get the VIP before the first peer sync")
	}
	f.syncPeers()
	if f.resyncs != 0 {
		t.Fatalf("first peer sync asked for %d resyncs, want none", f.resyncs)
	}
	cfgs := slices.Clone(f.speaker.peers)

	// The label moves from a to b: the peer sync asks for a resync; the peers' configs (and
	// so their sessions) do not change; the Service's sync moves the route.
	f.peer("a", peerA, nil)
	f.peer("b", peerB, map[string]string{"role": "edge"})
	f.syncPeers()
	if f.resyncs != 1 {
		t.Fatalf("resyncs = %d after a label change, want 1", f.resyncs)
	}
	if !reflect.DeepEqual(f.speaker.peers, cfgs) {
		t.Fatalf("peer configs changed with the labels: %+v -> %+v", cfgs, f.speaker.peers)
	}
	f.sync("default/web")
	if _, ok := f.sentTo(peerA, vip); ok {
		t.Fatal("peer a still gets the VIP after losing the label")
	}
	if _, ok := f.sentTo(peerB, vip); !ok {
		t.Fatal("peer b does not get the VIP after gaining the label")
	}
	f.syncPeers()
	if f.resyncs != 1 {
		t.Fatalf("an unchanged peer sync asked for a resync (%d)", f.resyncs)
	}
}

func TestSharedVIPMergesPerPeer(t *testing.T) {
	f := newFixture(t)
	f.peer("a", peerA, map[string]string{"role": "a"})
	f.peer("b", peerB, nil)
	f.syncPeers()
	f.service("open", "203.0.113.10", corev1.ServiceExternalTrafficPolicyLocal)
	f.service("picky", "203.0.113.10", corev1.ServiceExternalTrafficPolicyLocal)
	f.endpoints("open", [3]string{"198.19.1.5", node, "ready"})
	f.endpoints("picky", [3]string{"198.19.1.6", node, "ready"})
	f.advert("open", v1alpha1.BGPAdvertisementSpec{ServiceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "open"}},
		Communities: []v1alpha1.Community{"64512:1"}})
	f.advert("picky", v1alpha1.BGPAdvertisementSpec{ServiceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "picky"}},
		PeerSelector: role("a"), Communities: []v1alpha1.Community{"64512:2"}})
	f.sync("default/open")
	f.sync("default/picky")
	a, _ := f.sentTo(peerA, vip)
	b, okB := f.sentTo(peerB, vip)
	if !slices.Equal(a.Communities, []uint32{comm(t, "64512:1"), comm(t, "64512:2")}) {
		t.Fatalf("peer a gets %+v, want both Services' communities", a)
	}
	if !okB || !slices.Equal(b.Communities, []uint32{comm(t, "64512:1")}) {
		t.Fatalf("peer b gets %+v, %t; want the open Service's community only", b, okB)
	}
	// A new peer gets the open Service's share at once (no Service's own path changed).
	f.peer("c", peerC, nil)
	f.syncPeers()
	if c, ok := f.sentTo(peerC, vip); !ok || !slices.Equal(c.Communities, []uint32{comm(t, "64512:1")}) {
		t.Fatalf("new peer c gets %+v, %t", c, ok)
	}
	// The picky Service leaves: one path for every peer again.
	f.endpoints("picky")
	f.sync("default/picky")
	if p := f.speaker.paths[vip]; p.PeerAttributes != nil || !slices.Equal(p.Communities, []uint32{comm(t, "64512:1")}) {
		t.Fatalf("path = %+v", p)
	}
}
