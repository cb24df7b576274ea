package app

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/bgp"
	"github.com/bgplb/bgplb/daemon/bgp/bgptest"
	crdfake "github.com/bgplb/bgplb/daemon/client/clientset/versioned/fake"
	"github.com/bgplb/bgplb/daemon/eligibility/plugins/names"
	"github.com/bgplb/bgplb/internal/poll"
)

func TestOptionsValidate(t *testing.T) {
	o := NewOptions()
	o.NodeName = ""
	o.Socket = "relative.sock"
	o.Workers = 0
	o.UplinkInterfaces = []string{"a/b"}
	_, err := o.Config("test", nil)
	if err == nil {
		t.Fatal("invalid options accepted")
	}
	for _, want := range []string{"--node-name", "--socket", "--workers", "--uplink-interfaces"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestConfigProfile(t *testing.T) {
	o := NewOptions()
	o.NodeName = "node1"
	o.Class = "example.com/lb"
	o.Datapath = false
	cfg, err := o.Config("test", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range cfg.Profile.Plugins.PreFilter.Enabled {
		if r.Name == names.DatapathReady {
			t.Fatal("DatapathReady enabled with --datapath=false")
		}
	}
	found := false
	for _, pc := range cfg.Profile.PluginConfig {
		if pc.Name == names.ServiceClass {
			found = strings.Contains(string(pc.Args), `"example.com/lb"`)
		}
	}
	if !found {
		t.Fatalf("ServiceClass args do not carry --class: %+v", cfg.Profile.PluginConfig)
	}
}

// TestRunEndToEnd runs the whole daemon against fake clients and a fake speaker: LB-IPAM
// assigns the VIP, the announcer announces it (endpoint on this node, Local policy), the
// BGPNodeState and the Announced condition follow.
func TestRunEndToEnd(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	dir := t.TempDir()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1", UID: "n1"},
		Status: corev1.NodeStatus{
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "198.18.0.11"}},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		}}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: ptr.To(v1alpha1.DefaultLoadBalancerClass),
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal, IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}}}
	foreign := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "foreign"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: ptr.To("example.com/other"),
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}}}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"198.19.1.5"}, NodeName: ptr.To("node1"),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web-0"}}},
	}
	kube := fake.NewSimpleClientset(node, svc, foreign, slice,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}})
	crd := crdfake.NewSimpleClientset(
		&v1alpha1.LoadBalancerIPPool{ObjectMeta: metav1.ObjectMeta{Name: "pool"},
			Spec: v1alpha1.LoadBalancerIPPoolSpec{Blocks: []v1alpha1.IPBlock{{CIDR: "203.0.113.0/28"}}}},
		&v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "router"},
			Spec: v1alpha1.BGPPeerSpec{LocalASN: 64513, PeerASN: 64512, PeerAddress: "198.18.0.1"}},
		&v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "all"}},
	)
	speaker := bgptest.NewFake()

	o := NewOptions()
	o.NodeName = "node1"
	o.Datapath = false // no bpffs in unit tests; the registry is not consulted either
	o.LeaderElect = false
	o.Socket = filepath.Join(dir, "bgplbd.sock")
	o.RecordsDir = filepath.Join(dir, "endpoints")
	o.MetricsBindAddress, o.HealthBindAddress = "127.0.0.1:0", "127.0.0.1:0"
	cfg, err := o.Config("test", nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, clients{kube: kube, ipam: kube, status: kube, crd: crd}, speaker) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("run did not stop")
		}
	})

	vip := netip.MustParsePrefix("203.0.113.0/32")
	poll.Eventually(t, waitFor, tick, "VIP assigned and announced", func() bool {
		got, err := kube.CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil || len(got.Status.LoadBalancer.Ingress) != 1 {
			return false
		}
		for _, p := range speaker.Announced() {
			if p.Prefix == vip {
				return true
			}
		}
		return false
	})
	if peers := speaker.ConfiguredPeers(); len(peers) != 1 || peers[0].Name != "router" {
		t.Fatalf("configured peers = %+v", peers)
	}
	speaker.SetStatus(netip.MustParseAddr("198.18.0.1"), bgp.PeerStatus{State: bgp.StateEstablished, EstablishedSince: time.Now()})
	poll.Eventually(t, waitFor, tick, "BGPNodeState counts the prefix", func() bool {
		ns, err := crd.BgplbV1alpha1().BGPNodeStates().Get(ctx, "node1", metav1.GetOptions{})
		return err == nil && ns.Status.Announced.IPv4 == 1 &&
			len(ns.Status.Peers) == 1 && ns.Status.Peers[0].State == bgp.StateEstablished
	})
	poll.Eventually(t, waitFor, tick, "Announced condition", func() bool {
		got, err := kube.CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false
		}
		c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionAnnounced)
		return c != nil && c.Status == metav1.ConditionTrue
	})
	poll.Eventually(t, waitFor, tick, "BGPPeer Established condition", func() bool {
		p, err := crd.BgplbV1alpha1().BGPPeers().Get(ctx, "router", metav1.GetOptions{})
		if err != nil {
			return false
		}
		c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.PeerConditionEstablished)
		return c != nil && c.Status == metav1.ConditionTrue && c.Message == "1 of 1 node(s) established"
	})
	f, err := kube.CoreV1().Services("default").Get(ctx, "foreign", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Status.LoadBalancer.Ingress) != 0 || len(f.Status.Conditions) != 0 {
		t.Fatalf("foreign-class service was written: %+v", f.Status)
	}

	// The endpoint goes away: the VIP is withdrawn.
	if err := kube.DiscoveryV1().EndpointSlices("default").Delete(ctx, "web-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, waitFor, tick, "VIP withdrawn", func() bool { return len(speaker.Announced()) == 0 })
}

// waitFor and tick are how long and how often the tests poll the daemon's outputs.
const (
	waitFor = 15 * time.Second
	tick    = 20 * time.Millisecond
)

func TestRunFailsWhenTheSocketCannotBeServed(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "bgplbd.sock")
	if err := os.WriteFile(sock, []byte("not a socket"), 0o600); err != nil {
		t.Fatal(err)
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "198.18.0.11"}}}}
	o := NewOptions()
	o.NodeName, o.Datapath, o.LeaderElect = "node1", false, false
	o.Socket, o.RecordsDir = sock, filepath.Join(dir, "endpoints")
	o.MetricsBindAddress, o.HealthBindAddress = "", ""
	cfg, err := o.Config("test", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	kube := fake.NewSimpleClientset(node)
	err = run(ctx, cfg, clients{kube: kube, ipam: kube, status: kube, crd: crdfake.NewSimpleClientset()}, bgptest.NewFake())
	if err == nil || !strings.Contains(err.Error(), "endpoint registry server") || ctx.Err() != nil {
		t.Fatalf("run = %v (ctx %v), want a registry server error before the timeout", err, ctx.Err())
	}
}
