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

	"github.com/bgplb/bgplb/daemon/announce"
	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/bgp"
	"github.com/bgplb/bgplb/daemon/client/clientset/versioned"
	"github.com/bgplb/bgplb/daemon/metrics"
)

// PeerSource is the speaker's view of its sessions (daemon/bgp.Speaker).
type PeerSource interface {
	// Peers returns the status of every configured neighbour, sorted by address.
	Peers(ctx context.Context) ([]bgp.PeerStatus, error)
}

// AnnounceSource is the announcer's view of what it applied (daemon/announce.Announcer).
type AnnounceSource interface {
	// State returns the tracked Services and the announced prefixes with their Services.
	State() ([]announce.ServiceState, []announce.Prefix)
	// PeerProblems returns the BGPPeers selecting this node that could not be configured.
	PeerProblems() []announce.PeerProblem
	// Generation changes whenever State or PeerProblems may return something else.
	Generation() uint64
}

// NodeStateWriter writes this node's BGPNodeState.
type NodeStateWriter struct {
	client   versioned.Interface
	node     string
	peers    PeerSource
	announce AnnounceSource
	nodeObj  func() *corev1.Node // for the owner reference; may return nil
	interval time.Duration
	trigger  chan struct{}
	last     *v1alpha1.BGPNodeStateStatus // last status written (nil: none yet)
	// lastDatapathNotReady is the AnnotationDatapathNotReady value last written (nil: none yet).
	lastDatapathNotReady *string
	lastDatapathGen      uint64

	// The prefixes Desired built last, with what they were built from: the announcer's
	// generation and the established peers. At 10k prefixes a rebuild (and comparing it
	// with the last write) allocates ~3 MB; the periodic refresh of an idle daemon reuses
	// them, and the comparison then finds the same slice at once.
	prefixes      []v1alpha1.AnnouncedPrefix
	prefixesGen   uint64
	prefixesTo    []string
	prefixesBuilt bool
}

// NewNodeStateWriter returns a writer for node. minInterval bounds the write rate.
func NewNodeStateWriter(client versioned.Interface, node string, peers PeerSource, ann AnnounceSource, nodeObj func() *corev1.Node, minInterval time.Duration) *NodeStateWriter {
	return &NodeStateWriter{client: client, node: node, peers: peers, announce: ann, nodeObj: nodeObj,
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
	for {
		if dirty {
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
		select { // rate limit
		case <-ctx.Done():
			return
		case <-time.After(w.interval):
		}
	}
}

// Desired computes the status from the speaker and the announcer.
func (w *NodeStateWriter) Desired(ctx context.Context) (v1alpha1.BGPNodeStateStatus, error) {
	var st v1alpha1.BGPNodeStateStatus
	peers, err := w.peers.Peers(ctx)
	if err != nil {
		return st, fmt.Errorf("list bgp peers: %w", err)
	}
	up := 0
	for _, p := range peers {
		ps := v1alpha1.BGPPeerState{
			Name: p.Name, Address: p.Address.String(), PeerASN: int64(p.PeerASN), LocalASN: int64(p.LocalASN),
			State: p.State, LastError: p.LastError, PrefixesSent: int64(p.PrefixesSent),
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
	for _, pr := range w.announce.PeerProblems() {
		st.Peers = append(st.Peers, v1alpha1.BGPPeerState{Name: pr.Peer, State: v1alpha1.SessionIdle, LastError: pr.Message})
	}
	metrics.SessionsUp.Set(float64(up))
	metrics.Sessions.Set(float64(len(peers)))
	// listMapKey is name: keep one entry per BGPPeer name.
	slices.SortStableFunc(st.Peers, func(a, b v1alpha1.BGPPeerState) int { return strings.Compare(a.Name, b.Name) })
	st.Peers = slices.CompactFunc(st.Peers, func(a, b v1alpha1.BGPPeerState) bool { return a.Name == b.Name })
	var peerNames []string
	for _, p := range peers {
		if p.State == bgp.StateEstablished {
			peerNames = append(peerNames, p.Name)
		}
	}
	slices.Sort(peerNames)
	peerNames = slices.Compact(peerNames)
	st.Prefixes = w.announcedPrefixes(peerNames)
	return st, nil
}

// announcedPrefixes returns the prefixes of the status given the established peers'
// names, rebuilt only when they or the announcer's generation changed. The result is
// shared with earlier statuses and must not be modified.
func (w *NodeStateWriter) announcedPrefixes(peerNames []string) []v1alpha1.AnnouncedPrefix {
	gen := w.announce.Generation() // before State: a change in between shows next time
	if w.prefixesBuilt && gen == w.prefixesGen && slices.Equal(peerNames, w.prefixesTo) {
		return w.prefixes
	}
	var out []v1alpha1.AnnouncedPrefix
	_, prefixes := w.announce.State()
	for _, p := range prefixes {
		to := slices.Clone(peerNames) // every established peer, unless a peerSelector limits the prefix
		if p.Peers != nil {
			to = slices.DeleteFunc(to, func(n string) bool { return !slices.Contains(p.Peers, n) })
		}
		out = append(out, v1alpha1.AnnouncedPrefix{Prefix: p.Prefix.String(), Services: p.Services, Peers: to})
	}
	w.prefixes, w.prefixesGen, w.prefixesTo, w.prefixesBuilt = out, gen, peerNames, true
	return out
}

// Sync writes the BGPNodeState when its status differs from the last one written.
func (w *NodeStateWriter) Sync(ctx context.Context) (err error) {
	want, err := w.Desired(ctx)
	if err != nil {
		return err
	}
	if w.last != nil && reflect.DeepEqual(*w.last, want) {
		return w.syncDatapathAnnotationIfChanged(ctx)
	}
	defer func() {
		if err == nil {
			err = w.syncDatapathAnnotationIfChanged(ctx)
		}
	}()
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
	klog.FromContext(ctx).V(2).Info("BGPNodeState written", "peers", len(want.Peers), "prefixes", len(want.Prefixes))
	return nil
}
