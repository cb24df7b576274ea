package app

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/bgplb/bgplb/daemon/bgp"
	"github.com/bgplb/bgplb/daemon/bgp/bgptest"
	"github.com/bgplb/bgplb/internal/poll"
)

// drainFixture is a nodeDrain over a fake speaker with one announced path and a node
// the test changes.
type drainFixture struct {
	d      *nodeDrain
	sp     *bgptest.Fake
	mu     sync.Mutex
	node   *corev1.Node
	prefix netip.Prefix
}

func newDrainFixture(t *testing.T, delay time.Duration) *drainFixture {
	t.Helper()
	ctx := context.Background()
	f := &drainFixture{sp: bgptest.NewFake(), node: &corev1.Node{}, prefix: netip.MustParsePrefix("198.51.100.10/32")}
	if err := f.sp.Start(ctx, bgp.Global{ASN: 64512, RouterID: netip.MustParseAddr("198.18.0.1")}); err != nil {
		t.Fatal(err)
	}
	if err := f.sp.SetAllowedPrefixes(ctx, []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}); err != nil {
		t.Fatal(err)
	}
	f.d = newNodeDrain(klog.Background(), f.sp, func() *corev1.Node {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.node.DeepCopy()
	}, delay)
	t.Cleanup(f.d.close)
	if err := f.d.Announce(ctx, bgp.Path{Prefix: f.prefix}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *drainFixture) setNode(mutate func(*corev1.Node)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	mutate(f.node)
}

func (f *drainFixture) announced() bool {
	return slices.ContainsFunc(f.sp.Announced(), func(p bgp.Path) bool { return p.Prefix == f.prefix })
}

// TestNodeDrainPassesThrough: a node in service withdraws at once, without the
// community.
func TestNodeDrainPassesThrough(t *testing.T) {
	f := newDrainFixture(t, time.Hour)
	if err := f.d.Withdraw(context.Background(), f.prefix); err != nil {
		t.Fatal(err)
	}
	if f.announced() || f.sp.GracefulShutdown() {
		t.Fatalf("announced %v community %v after a withdrawal on a node in service; want neither", f.announced(), f.sp.GracefulShutdown())
	}
}

// TestNodeDrainDelaysWithdrawal: on a cordoned or excluded node a withdrawal first puts
// the community on the path, which stays for the delay and then goes.
func TestNodeDrainDelaysWithdrawal(t *testing.T) {
	for name, drain := range map[string]func(*corev1.Node){
		"cordoned": func(n *corev1.Node) { n.Spec.Unschedulable = true },
		"excluded": func(n *corev1.Node) { n.Labels = map[string]string{excludeLabel: ""} },
	} {
		t.Run(name, func(t *testing.T) {
			f := newDrainFixture(t, 300*time.Millisecond)
			f.setNode(drain) // seen by the withdrawal itself, before any node event
			start := time.Now()
			if err := f.d.Withdraw(context.Background(), f.prefix); err != nil {
				t.Fatal(err)
			}
			if !f.announced() || !f.sp.GracefulShutdown() {
				t.Fatalf("right after the withdrawal: announced %v community %v; want both", f.announced(), f.sp.GracefulShutdown())
			}
			poll.Eventually(t, 5*time.Second, 10*time.Millisecond, "the path withdrawn after the delay", func() bool { return !f.announced() })
			if d := time.Since(start); d < 300*time.Millisecond {
				t.Fatalf("withdrawn %s after the call, before the 300ms delay", d)
			}
		})
	}
}

// TestNodeDrainAnnounceCancels: announcing the prefix again while its withdrawal waits
// keeps it announced.
func TestNodeDrainAnnounceCancels(t *testing.T) {
	f := newDrainFixture(t, 100*time.Millisecond)
	f.setNode(func(n *corev1.Node) { n.Spec.Unschedulable = true })
	ctx := context.Background()
	if err := f.d.Withdraw(ctx, f.prefix); err != nil {
		t.Fatal(err)
	}
	if err := f.d.Announce(ctx, bgp.Path{Prefix: f.prefix}); err != nil {
		t.Fatal(err)
	}
	poll.Consistently(t, 500*time.Millisecond, 20*time.Millisecond, "the path announced again stays", f.announced)
}

// TestNodeDrainSync: node events put the community on (cordon) and off (uncordon); the
// uncordon withdraws what waited at once.
func TestNodeDrainSync(t *testing.T) {
	f := newDrainFixture(t, time.Hour)
	ctx := context.Background()
	f.setNode(func(n *corev1.Node) { n.Spec.Unschedulable = true })
	if err := f.d.Sync(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if !f.sp.GracefulShutdown() || !f.announced() {
		t.Fatalf("after the cordon: community %v announced %v; want both", f.sp.GracefulShutdown(), f.announced())
	}
	if err := f.d.Withdraw(ctx, f.prefix); err != nil {
		t.Fatal(err)
	}
	if !f.announced() {
		t.Fatal("withdrawn at once on a cordoned node; want it kept for the delay")
	}
	f.setNode(func(n *corev1.Node) { n.Spec.Unschedulable = false })
	if err := f.d.Sync(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if f.sp.GracefulShutdown() || f.announced() {
		t.Fatalf("after the uncordon: community %v announced %v; want neither", f.sp.GracefulShutdown(), f.announced())
	}
}
