package app

import (
	"context"
	"net/netip"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/bgplb/bgplb/daemon/bgp"
)

// excludeLabel is the well-known label that takes a node out of external load
// balancers (the nodeexclusion eligibility plugin withdraws its routes).
const excludeLabel = "node.kubernetes.io/exclude-from-external-load-balancers"

// drainSpeaker is the part of the BGP speaker nodeDrain drives.
type drainSpeaker interface {
	Announce(ctx context.Context, p bgp.Path) error
	Withdraw(ctx context.Context, prefix netip.Prefix) error
	SetGracefulShutdown(ctx context.Context, on bool) error
}

// nodeDrain makes the announcer's withdrawals make-before-break while this node is
// drained — cordoned (kubectl cordon or drain) or labelled
// node.kubernetes.io/exclude-from-external-load-balancers: every path carries the
// GRACEFUL_SHUTDOWN community (the routers move new flows to the other nodes at once),
// and a withdrawal waits delay with the community on before it goes, so the routers
// never lose the path before they have stopped choosing it. On a node that is not
// drained it passes withdrawals through. It sits between the announcer and the
// speaker (announce.Speaker); the node's state is read from the informer cache at
// every withdrawal, so a cordon seen together with the eviction of the node's last
// endpoint is still honoured, and Sync (the node's informer events) puts the community
// on or off when no withdrawal happens (ETP=Cluster keeps announcing a cordoned node,
// with the lowest preference).
type nodeDrain struct {
	speaker drainSpeaker
	node    func() *corev1.Node // this node from the informer cache; nil when unknown
	delay   time.Duration
	logger  klog.Logger

	mu       sync.Mutex
	draining bool                         // the community is on
	pending  map[netip.Prefix]*time.Timer // prefix → its delayed withdrawal
	closed   bool
}

func newNodeDrain(logger klog.Logger, speaker drainSpeaker, node func() *corev1.Node, delay time.Duration) *nodeDrain {
	return &nodeDrain{speaker: speaker, node: node, delay: delay, logger: logger, pending: map[netip.Prefix]*time.Timer{}}
}

// nodeDrained reports whether node is drained, with a stable camelCase reason.
func nodeDrained(node *corev1.Node) (bool, string) {
	switch {
	case node == nil:
		return false, "nodeUnknown"
	case node.Spec.Unschedulable:
		return true, "nodeCordoned"
	}
	if _, ok := node.Labels[excludeLabel]; ok {
		return true, "nodeExcluded"
	}
	return false, "nodeInService"
}

// Announce implements announce.Speaker: it cancels a pending withdrawal of p.Prefix.
func (d *nodeDrain) Announce(ctx context.Context, p bgp.Path) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t, ok := d.pending[p.Prefix]; ok {
		t.Stop()
		delete(d.pending, p.Prefix)
	}
	return d.speaker.Announce(ctx, p)
}

// Withdraw implements announce.Speaker: on a drained node the path keeps the
// GRACEFUL_SHUTDOWN community for delay before it is withdrawn.
func (d *nodeDrain) Withdraw(ctx context.Context, prefix netip.Prefix) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.delay <= 0 || d.closed || !d.syncLocked(ctx) {
		return d.speaker.Withdraw(ctx, prefix)
	}
	if _, ok := d.pending[prefix]; ok {
		return nil
	}
	var t *time.Timer
	t = time.AfterFunc(d.delay, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.pending[prefix] != t {
			return // announced again, or withdrawn at once when the drain ended
		}
		delete(d.pending, prefix)
		wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.speaker.Withdraw(wctx, prefix); err != nil {
			d.logger.Info("delayed withdrawal of a drained node's path failed", "prefix", prefix, "err", err)
		}
	})
	d.pending[prefix] = t
	d.logger.V(2).Info("Withdrawal delayed: the path carries the graceful-shutdown community meanwhile", "prefix", prefix, "delay", d.delay)
	return nil
}

// Sync puts the GRACEFUL_SHUTDOWN community on or off to match the node's state (a
// watch.SyncFunc for the node's events; the key is ignored).
func (d *nodeDrain) Sync(ctx context.Context, _ string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.syncLocked(ctx)
	return nil
}

// syncLocked sets the community to match the node's state and reports whether it is
// on. When the drain ends, pending withdrawals happen at once. A failure to set the
// community leaves the state unchanged (the next withdrawal or node event retries):
// a withdrawal then happens at once, which is the behaviour without drain handling.
func (d *nodeDrain) syncLocked(ctx context.Context) bool {
	drained, why := nodeDrained(d.node())
	if drained == d.draining {
		return d.draining
	}
	if err := d.speaker.SetGracefulShutdown(ctx, drained); err != nil {
		d.logger.Info("setting the graceful-shutdown community failed", "on", drained, "reason", why, "err", err)
		return d.draining
	}
	d.draining = drained
	d.logger.Info("Node drain state changed: graceful-shutdown community set on every path", "draining", drained, "reason", why, "withdrawDelay", d.delay)
	if !drained {
		for prefix, t := range d.pending {
			t.Stop()
			delete(d.pending, prefix)
			if err := d.speaker.Withdraw(ctx, prefix); err != nil {
				d.logger.Info("withdrawal of a path after the drain ended failed", "prefix", prefix, "err", err)
			}
		}
	}
	return d.draining
}

// close stops the pending withdrawals when the daemon stops: stopSpeaker decides what
// the routers keep (graceful restart) or lose (a drain's Cease).
func (d *nodeDrain) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	for prefix, t := range d.pending {
		t.Stop()
		delete(d.pending, prefix)
	}
}
