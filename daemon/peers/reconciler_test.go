package peers

import (
	"context"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/bgp"
	bgplisters "github.com/bgplb/bgplb/daemon/client/listers/bgplb/v1alpha1"
)

// recordingSpeaker keeps what the reconciler last set.
type recordingSpeaker struct {
	peers   []bgp.PeerConfig
	allowed []netip.Prefix
	paths   []netip.Prefix
}

func (s *recordingSpeaker) SetPeers(_ context.Context, peers []bgp.PeerConfig) error {
	s.peers = peers
	return nil
}

func (s *recordingSpeaker) SetAllowedPrefixes(_ context.Context, allowed []netip.Prefix) error {
	s.allowed = allowed
	return nil
}

func (s *recordingSpeaker) Announce(_ context.Context, p bgp.Path) error {
	s.paths = append(s.paths, p.Prefix)
	return nil
}

func (s *recordingSpeaker) Withdraw(_ context.Context, prefix netip.Prefix) error {
	s.paths = slices.DeleteFunc(s.paths, func(p netip.Prefix) bool { return p == prefix })
	return nil
}

func (s *recordingSpeaker) announced() []string {
	var out []string
	for _, p := range s.paths {
		out = append(out, p.String())
	}
	return out
}

type fixture struct {
	t       *testing.T
	speaker *recordingSpeaker
	r       *Reconciler
	peers   cache.Indexer
	secrets cache.Indexer
	node    *corev1.Node
}

func newFixture(t *testing.T) *fixture {
	idx := func() cache.Indexer {
		return cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	}
	pools := idx()
	must(t, pools.Add(&v1alpha1.LoadBalancerIPPool{ObjectMeta: metav1.ObjectMeta{Name: "pool"},
		Spec: v1alpha1.LoadBalancerIPPoolSpec{Blocks: []v1alpha1.IPBlock{{CIDR: "203.0.113.0/24"}}}}))
	f := &fixture{t: t, speaker: &recordingSpeaker{}, peers: idx(), secrets: idx(),
		node: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1", Labels: map[string]string{"rack": "a"}}}}
	f.r = New(Sources{
		Node:    func() *corev1.Node { return f.node },
		Pools:   bgplisters.NewLoadBalancerIPPoolLister(pools),
		Peers:   bgplisters.NewBGPPeerLister(f.peers),
		Secrets: corelisters.NewSecretLister(f.secrets).Secrets("bgplb-system"),
	}, f.speaker)
	return f
}

func (f *fixture) sync() {
	f.t.Helper()
	must(f.t, f.r.Sync(context.Background(), Key))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestSyncPeers(t *testing.T) {
	f := newFixture(t)
	must(t, f.peers.Add(&v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "router"},
		Spec: v1alpha1.BGPPeerSpec{LocalASN: 64513, PeerASN: 64512, PeerAddress: "198.18.0.1",
			Timers:            &v1alpha1.BGPTimers{HoldTimeSeconds: ptr.To[int32](9), KeepaliveTimeSeconds: ptr.To[int32](3)},
			PasswordSecretRef: &v1alpha1.SecretKeyRef{Name: "bgp", Key: "password"}}}))
	must(t, f.peers.Add(&v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "rack-b"},
		Spec: v1alpha1.BGPPeerSpec{LocalASN: 64513, PeerASN: 64512, PeerAddress: "198.18.0.2",
			NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"rack": "b"}}}}))
	f.sync()
	if len(f.speaker.peers) != 0 || len(f.r.Problems()) != 1 || !strings.Contains(f.r.Problems()[0].Message, `secret "bgp" not found`) {
		t.Fatalf("peers %+v problems %+v; want none configured and a missing-secret problem", f.speaker.peers, f.r.Problems())
	}
	if !reflect.DeepEqual(f.speaker.allowed, []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}) {
		t.Fatalf("allowed = %v", f.speaker.allowed)
	}
	must(t, f.secrets.Add(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "bgplb-system", Name: "bgp"},
		Data: map[string][]byte{"password": []byte("s3cret")}}))
	f.sync()
	if len(f.speaker.peers) != 1 {
		t.Fatalf("peers = %+v, want only the router", f.speaker.peers)
	}
	p := f.speaker.peers[0]
	if p.Name != "router" || p.Password != "s3cret" || p.HoldTime.Seconds() != 9 || !p.GracefulRestart.Enabled ||
		p.GracefulRestart.RestartTime.Seconds() != 120 || p.PeerASN != 64512 || p.LocalASN != 64513 {
		t.Fatalf("peer config = %+v", p)
	}
}

// TestGracefulRestartDefault: absent or without "enabled" means on (120 s unless set);
// only enabled: false turns it off.
func TestGracefulRestartDefault(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		gr      *v1alpha1.GracefulRestart
		enabled bool
		secs    float64
	}{
		{nil, true, 120},
		{&v1alpha1.GracefulRestart{RestartTimeSeconds: ptr.To[int32](60)}, true, 60},
		{&v1alpha1.GracefulRestart{Enabled: ptr.To(true)}, true, 120},
		{&v1alpha1.GracefulRestart{Enabled: ptr.To(false), RestartTimeSeconds: ptr.To[int32](60)}, false, 0},
	} {
		cfg, err := f.r.peerConfig(&v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "router"},
			Spec: v1alpha1.BGPPeerSpec{LocalASN: 64513, PeerASN: 64512, PeerAddress: "198.18.0.1", GracefulRestart: c.gr}})
		must(t, err)
		if cfg.GracefulRestart.Enabled != c.enabled || cfg.GracefulRestart.RestartTime.Seconds() != c.secs {
			t.Errorf("gracefulRestart %+v: got %+v, want enabled=%v restart %vs", c.gr, cfg.GracefulRestart, c.enabled, c.secs)
		}
	}
}

func TestDuplicatePeerAddressKeepsTheOlderPeer(t *testing.T) {
	f := newFixture(t)
	old := metav1.NewTime(time.Now().Add(-time.Hour))
	must(t, f.peers.Add(&v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "lab-router", CreationTimestamp: old},
		Spec: v1alpha1.BGPPeerSpec{LocalASN: 64513, PeerASN: 64512, PeerAddress: "198.18.0.1"}}))
	must(t, f.peers.Add(&v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "a-wrong-asn", CreationTimestamp: metav1.Now()},
		Spec: v1alpha1.BGPPeerSpec{LocalASN: 64513, PeerASN: 64612, PeerAddress: "198.18.0.1"}}))
	f.sync()
	if len(f.speaker.peers) != 1 || f.speaker.peers[0].Name != "lab-router" || f.speaker.peers[0].PeerASN != 64512 {
		t.Fatalf("configured peers = %+v, want the older lab-router only", f.speaker.peers)
	}
	pr := f.r.Problems()
	if len(pr) != 1 || pr[0].Peer != "a-wrong-asn" || !strings.Contains(pr[0].Message, "also used by BGPPeer lab-router") {
		t.Fatalf("problems = %+v", pr)
	}
}

func TestExportPodCIDRs(t *testing.T) {
	f := newFixture(t)
	f.r.ExportPodCIDRs(true)
	f.node.Spec.PodCIDRs = []string{"198.19.1.0/24"}
	f.sync()
	f.sync()
	if got := f.speaker.announced(); !reflect.DeepEqual(got, []string{"198.19.1.0/24"}) {
		t.Fatalf("announced %v, want the pod CIDR", got)
	}
	// A pool change re-sets the allowed prefixes: the pod CIDR must stay allowed.
	f.sync()
	if !slices.Contains(f.speaker.allowed, netip.MustParsePrefix("198.19.1.0/24")) {
		t.Fatalf("allowed %v lacks the pod CIDR", f.speaker.allowed)
	}
	f.node.Spec.PodCIDRs = []string{"198.19.9.0/24"}
	f.sync()
	if got := f.speaker.announced(); !reflect.DeepEqual(got, []string{"198.19.9.0/24"}) {
		t.Fatalf("announced %v after the pod CIDR changed", got)
	}
}

func TestPodCIDRsNotExportedByDefault(t *testing.T) {
	f := newFixture(t)
	f.node.Spec.PodCIDRs = []string{"198.19.1.0/24"}
	f.sync()
	f.sync()
	if got := f.speaker.announced(); len(got) != 0 {
		t.Fatalf("announced %v without ExportPodCIDRs", got)
	}
}

// TestAddressFamilies: spec.addressFamilies becomes the session's families, and the
// other family's next hop is the node's global address of that family (InternalIP
// before ExternalIP, link-local skipped); a node without an IPv6 address cannot carry
// IPv6 on an IPv4 session (a problem, no session), while IPv4 on an IPv6 session falls
// back to the extended next hop.
func TestAddressFamilies(t *testing.T) {
	f := newFixture(t)
	both := []v1alpha1.AddressFamily{v1alpha1.AddressFamilyIPv4, v1alpha1.AddressFamilyIPv6}
	peer := func(addr string, fams []v1alpha1.AddressFamily) *v1alpha1.BGPPeer {
		return &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "router"},
			Spec: v1alpha1.BGPPeerSpec{LocalASN: 64513, PeerASN: 64512, PeerAddress: addr, AddressFamilies: fams}}
	}
	f.node.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeExternalIP, Address: "2001:db8:e::11"},
		{Type: corev1.NodeInternalIP, Address: "fe80::11"},
		{Type: corev1.NodeInternalIP, Address: "198.18.0.11"},
		{Type: corev1.NodeInternalIP, Address: "2001:db8:f::11"},
	}
	cfg, err := f.r.peerConfig(peer("198.18.0.1", both))
	must(t, err)
	if !slices.Equal(cfg.Families, []bgp.Family{bgp.FamilyIPv4, bgp.FamilyIPv6}) || cfg.OtherFamilyNextHop != netip.MustParseAddr("2001:db8:f::11") {
		t.Fatalf("dual-family IPv4 peer: families %v next hop %v, want both and the InternalIP 2001:db8:f::11", cfg.Families, cfg.OtherFamilyNextHop)
	}
	cfg, err = f.r.peerConfig(peer("2001:db8:f::1", both))
	must(t, err)
	if cfg.OtherFamilyNextHop != netip.MustParseAddr("198.18.0.11") {
		t.Fatalf("dual-family IPv6 peer: next hop %v, want 198.18.0.11", cfg.OtherFamilyNextHop)
	}
	cfg, err = f.r.peerConfig(peer("198.18.0.1", nil))
	must(t, err)
	if cfg.Families != nil || cfg.OtherFamilyNextHop.IsValid() {
		t.Fatalf("peer without addressFamilies: %+v, want the peer address's family only", cfg)
	}

	f.node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "198.18.0.11"}}
	must(t, f.peers.Add(peer("198.18.0.1", both)))
	f.sync()
	if pr := f.r.Problems(); len(f.speaker.peers) != 0 || len(pr) != 1 || !strings.Contains(pr[0].Message, "needs the node's IPv6 address") {
		t.Fatalf("IPv4-only node: peers %+v problems %+v, want no session and a problem", f.speaker.peers, pr)
	}
	f.node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "2001:db8:f::11"}}
	cfg, err = f.r.peerConfig(peer("2001:db8:f::1", both))
	must(t, err)
	if cfg.OtherFamilyNextHop.IsValid() {
		t.Fatalf("IPv6-only node: next hop %v, want none (extended next hop)", cfg.OtherFamilyNextHop)
	}
}
