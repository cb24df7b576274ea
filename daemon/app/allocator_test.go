package app

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/bgp/bgptest"
	crdfake "github.com/bgplb/bgplb/daemon/client/clientset/versioned/fake"

	"github.com/bgplb/bgplb/internal/poll"
)

// TestRunAllocatorMode: --mode=allocator assigns VIPs (Service status, IPAllocated) and
// writes the Announced condition from the nodes' states, and starts no speaker and no
// registry socket; --mode=node runs the node's work but never writes a Service's status.
func TestRunAllocatorMode(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1", UID: "n1"},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "198.18.0.11"}}}}
	svc := func() *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: ptr.To(v1alpha1.DefaultLoadBalancerClass),
				IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
				Ports:      []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}}}
	}
	pool := &v1alpha1.LoadBalancerIPPool{ObjectMeta: metav1.ObjectMeta{Name: "pool"},
		Spec: v1alpha1.LoadBalancerIPPoolSpec{Blocks: []v1alpha1.IPBlock{{CIDR: "203.0.113.0/28"}}}}
	start := func(t *testing.T, mode string, kube *fake.Clientset, crd *crdfake.Clientset, speaker *bgptest.Fake) string {
		_, ctx := ktesting.NewTestContext(t)
		ctx, cancel := context.WithCancel(ctx)
		dir := t.TempDir()
		o := NewOptions()
		o.NodeName, o.Mode, o.Datapath, o.LeaderElect = "node1", mode, false, false
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
		return o.Socket
	}

	t.Run("allocator", func(t *testing.T) {
		kube := fake.NewSimpleClientset(node, svc(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}})
		speaker := bgptest.NewFake()
		sock := start(t, ModeAllocator, kube, crdfake.NewSimpleClientset(pool), speaker)
		poll.Eventually(t, waitFor, tick, "VIP assigned with IPAllocated=True and an Announced condition", func() bool {
			got, err := kube.CoreV1().Services("default").Get(context.Background(), "web", metav1.GetOptions{})
			if err != nil || len(got.Status.LoadBalancer.Ingress) != 1 || got.Status.LoadBalancer.Ingress[0].IP != "203.0.113.0" {
				return false
			}
			c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionIPAllocated)
			return c != nil && c.Status == metav1.ConditionTrue &&
				meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionAnnounced) != nil
		})
		if calls := speaker.Calls(); len(calls) != 0 {
			t.Fatalf("allocator mode used the speaker: %v", calls)
		}
		if fileExists(sock) {
			t.Fatalf("allocator mode serves the registry socket %s", sock)
		}
	})

	t.Run("node", func(t *testing.T) {
		kube := fake.NewSimpleClientset(node, svc(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}})
		speaker := bgptest.NewFake()
		crd := crdfake.NewSimpleClientset(pool)
		start(t, ModeNode, kube, crd, speaker)
		poll.Eventually(t, waitFor, tick, "the node's BGPNodeState", func() bool {
			_, err := crd.BgplbV1alpha1().BGPNodeStates().Get(context.Background(), "node1", metav1.GetOptions{})
			return err == nil
		})
		var got *corev1.Service
		poll.Consistently(t, 2*time.Second, tick, "node mode leaves the Service's status alone", func() bool {
			var err error
			got, err = kube.CoreV1().Services("default").Get(context.Background(), "web", metav1.GetOptions{})
			return err == nil && len(got.Status.LoadBalancer.Ingress) == 0 && len(got.Status.Conditions) == 0
		})
		if len(got.Status.LoadBalancer.Ingress) != 0 || len(got.Status.Conditions) != 0 {
			t.Fatalf("node mode wrote the Service's status: %+v", got.Status)
		}
		for _, a := range kube.Actions() {
			if a.GetSubresource() == "status" && a.GetResource().Resource == "services" {
				t.Fatalf("node mode sent %s services/status", a.GetVerb())
			}
		}
	})
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
