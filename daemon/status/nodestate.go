package status

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/bgp"
	"github.com/bgplb/bgplb/daemon/client/clientset/versioned"
	"github.com/bgplb/bgplb/daemon/metrics"
	"github.com/bgplb/bgplb/daemon/peers"
)

// PeerSource is the speaker's view of its sessions (daemon/bgp.Speaker).
type PeerSource interface {
	// Peers returns the status of every configured neighbour, sorted by address.
	Peers(ctx context.Context) ([]bgp.PeerStatus, error)
}

// AnnounceSource is the announcer's view of what it applied (daemon/announce.Announcer).
type AnnounceSource interface {
	// PrefixCounts returns how many IPv4 and IPv6 prefixes the node originates.
	PrefixCounts() (v4, v6 int)
}

// NodeSource is what else the status reports; every function may be nil.
type NodeSource struct {
	// Version of the daemon.
	Version string
	// Datapath returns the datapath summary; nil function: datapath disabled.
	Datapath func() *v1alpha1.DatapathSummary
	// Errors returns the node's current problems (the writer keeps the first
	// v1alpha1.MaxNodeStateErrors).
	Errors func() []string
	// PeerProblems returns the BGPPeers selecting this node that could not be configured
	// (daemon/peers.Reconciler.Problems).
	PeerProblems func() []peers.Problem
}

// NodeStateWriter writes this node's BGPNodeState.
type NodeStateWriter struct {
	client   versioned.Interface
	node     string
	peers    PeerSource
	announce AnnounceSource
	src      NodeSource
	nodeObj  func() *corev1.Node // for the owner reference; may return nil
	interval time.Duration
	trigger  chan struct{}
	last     *v1alpha1.BGPNodeStateStatus // last status written (nil: none yet)
}

// NewNodeStateWriter returns a writer for node. minInterval bounds the write rate.
func NewNodeStateWriter(client versioned.Interface, node string, peers PeerSource, ann AnnounceSource, src NodeSource, nodeObj func() *corev1.Node, minInterval time.Duration) *NodeStateWriter {
	return &NodeStateWriter{client: client, node: node, peers: peers, announce: ann, src: src, nodeObj: nodeObj,
		interval: minInterval, trigger: make(chan struct{}, 1)}
}

// Trigger asks for a refresh; non-blocking, coalesced.
func (w *NodeStateWriter) Trigger() {
	select {
	case w.trigger <- struct{}{}:
	default:
	}
}

// Run refreshes on every Trigger (at most once per minInterval) and every refresh period
// until ctx is done. Failed writes are retried at the next tick.
func (w *NodeStateWriter) Run(ctx context.Context, refresh time.Duration) {
	logger := klog.FromContext(ctx).WithName("nodestate")
	tick := time.NewTicker(refresh)
	defer tick.Stop()
	dirty := true
	var last time.Time // start of the last sync
	for {
		if dirty {
			last = time.Now()
			if err := w.Sync(ctx); err != nil {
				logger.Info("writing BGPNodeState failed, will retry", "err", err)
			} else {
				dirty = false
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-w.trigger:
			dirty = true
		case <-tick.C:
			dirty = true
		}
		// Rate limit: a change after a quiet spell is written at once (a session coming
		// up shows in the Announced conditions without delay); a burst waits for the
		// interval since the last sync and is written as one.
		if wait := w.interval - time.Since(last); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}
}

// Desired computes the status from the speaker and the announcer.
func (w *NodeStateWriter) Desired(ctx context.Context) (v1alpha1.BGPNodeStateStatus, error) {
	st := v1alpha1.BGPNodeStateStatus{Version: w.src.Version}
	peers, err := w.peers.Peers(ctx)
	if err != nil {
		return st, fmt.Errorf("list bgp peers: %w", err)
	}
	up := 0
	for _, p := range peers {
		ps := v1alpha1.BGPPeerState{
			Name: p.Name, Address: p.Address.String(), PeerASN: int64(p.PeerASN), LocalASN: int64(p.LocalASN),
			State: p.State, LastError: p.LastError, PrefixesSent: int64(p.PrefixesSent), PrefixesReceived: int64(p.PrefixesReceived),
		}
		if b := p.BFD; b != nil {
			ps.BFD = &v1alpha1.BFDState{State: b.State, Diag: b.Diag, Ups: int64(b.Ups), Downs: int64(b.Downs)}
		}
		if p.State == bgp.StateEstablished {
			up++
			if !p.EstablishedSince.IsZero() {
				t := metav1.NewTime(p.EstablishedSince.Truncate(time.Second))
				ps.EstablishedSince = &t
			}
		}
		st.Peers = append(st.Peers, ps)
	}
	if w.src.PeerProblems != nil {
		for _, pr := range w.src.PeerProblems() {
			st.Peers = append(st.Peers, v1alpha1.BGPPeerState{Name: pr.Peer, State: v1alpha1.SessionIdle, LastError: pr.Message})
		}
	}
	metrics.SessionsUp.Set(float64(up))
	metrics.Sessions.Set(float64(len(peers)))
	// listMapKey is name: keep one entry per BGPPeer name.
	slices.SortStableFunc(st.Peers, func(a, b v1alpha1.BGPPeerState) int { return strings.Compare(a.Name, b.Name) })
	st.Peers = slices.CompactFunc(st.Peers, func(a, b v1alpha1.BGPPeerState) bool { return a.Name == b.Name })
	v4, v6 := w.announce.PrefixCounts()
	st.Announced = v1alpha1.PrefixCounts{IPv4: int32(v4), IPv6: int32(v6)}
	if w.src.Datapath != nil {
		st.Datapath = w.src.Datapath()
	}
	if w.src.Errors != nil {
		st.Errors = w.src.Errors()
		if len(st.Errors) > v1alpha1.MaxNodeStateErrors {
			st.Errors = st.Errors[:v1alpha1.MaxNodeStateErrors]
		}
	}
	return st, nil
}

// Sync writes the BGPNodeState when its status differs from the last one written.
func (w *NodeStateWriter) Sync(ctx context.Context) error {
	want, err := w.Desired(ctx)
	if err != nil {
		return err
	}
	if w.last != nil && reflect.DeepEqual(*w.last, want) {
		return nil
	}
	api := w.client.BgplbV1alpha1().BGPNodeStates()
	cur, err := api.Get(ctx, w.node, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		obj := &v1alpha1.BGPNodeState{ObjectMeta: metav1.ObjectMeta{Name: w.node}}
		if n := w.nodeObj(); n != nil && n.UID != "" {
			obj.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: n.Name, UID: n.UID}}
		}
		cur, err = api.Create(ctx, obj, metav1.CreateOptions{})
	}
	if err != nil {
		return fmt.Errorf("get bgpnodestate %s: %w", w.node, err)
	}
	if reflect.DeepEqual(cur.Status, want) {
		w.last = &want
		return nil
	}
	upd := cur.DeepCopy()
	upd.Status = want
	if _, err := api.UpdateStatus(ctx, upd, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update status of bgpnodestate %s: %w", w.node, err)
	}
	w.last = &want
	klog.FromContext(ctx).V(2).Info("BGPNodeState written", "peers", len(want.Peers), "ipv4", want.Announced.IPv4, "ipv6", want.Announced.IPv6)
	return nil
}
