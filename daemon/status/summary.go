package status

import (
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/watch"
)

// NodeSummary is what the Aggregator keeps of one node's BGPNodeState: its sessions and,
// per Service, whether the node announces one of its prefixes to a peer. At 10k Services a
// BGPNodeState lists ~10k prefixes with their Services and peers (~3 MB decoded per node);
// the summary keeps two sorted key sets in one allocation each (~0.4 MB).
//
// SummarizeNodeState is the transform of the leader's BGPNodeState informer, so its store
// holds *NodeSummary values (never mutated once stored).
type NodeSummary struct {
	metav1.ObjectMeta // Name and ResourceVersion only: the informer's store keys by it
	// Peers are the node's sessions as the BGPNodeState lists them.
	Peers []v1alpha1.BGPPeerState
	// announced: Services with a prefix this node announces to at least one peer.
	// wanted: Services this node has prefixes for that go to no peer (sessions down).
	// Disjoint.
	announced, wanted keySet
	// datapathNotReady: Service key -> why this node holds it back (AnnotationDatapathNotReady).
	datapathNotReady map[string]string
}

// SummarizeNodeState returns the summary of s (nil when s is nil).
func SummarizeNodeState(s *v1alpha1.BGPNodeState) *NodeSummary {
	if s == nil {
		return nil
	}
	var announced, wanted []string
	for _, p := range s.Status.Prefixes {
		if len(p.Peers) > 0 {
			announced = append(announced, p.Services...)
		} else {
			wanted = append(wanted, p.Services...)
		}
	}
	sum := &NodeSummary{
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, ResourceVersion: s.ResourceVersion},
		Peers:      slices.Clip(s.Status.Peers),
		announced:  newKeySet(announced),
		// The issue 16 hook: see datapath_hook.go.
		datapathNotReady: parseDatapathNotReady(s.Annotations),
	}
	sum.wanted = newKeySet(slices.DeleteFunc(wanted, sum.announced.has))
	return sum
}

// Announces reports whether the node announces a prefix of Service key to a peer.
func (s *NodeSummary) Announces(key string) bool { return s.announced.has(key) }

// Wants reports whether the node has a prefix of Service key but sends it to no peer.
func (s *NodeSummary) Wants(key string) bool { return s.wanted.has(key) }

// NodeSummaryTransform is SummarizeNodeState as the transform of the BGPNodeState
// informer whose store becomes AggregatorSources.NodeStates (other objects pass as they
// are).
func NodeSummaryTransform(obj any) (any, error) {
	if s, ok := obj.(*v1alpha1.BGPNodeState); ok {
		return SummarizeNodeState(s), nil
	}
	return obj, nil
}

// keySet is a sorted set of strings whose bytes share one allocation (a decoded list
// allocates every string on its own).
type keySet []string

func newKeySet(keys []string) keySet {
	if len(keys) == 0 {
		return nil
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	n := 0
	for _, k := range keys {
		n += len(k)
	}
	var b strings.Builder
	b.Grow(n)
	for _, k := range keys {
		b.WriteString(k)
	}
	all := b.String()
	set := make(keySet, len(keys))
	off := 0
	for i, k := range keys {
		set[i] = all[off : off+len(k)]
		off += len(k)
	}
	return set
}

func (k keySet) has(key string) bool {
	_, ok := slices.BinarySearch(k, key)
	return ok
}

// NodeStateChanges is the Announced aggregator's watch.Triggers.NodeStateChanges: from a
// node's summaries before and after a change (nil for none) it returns the Service keys
// whose condition may change. A change of the node's session counts shows in every
// Service's message (AllServices); a change of its sessions' names, addresses, states or
// errors in the BGPPeers' conditions (PeersKey); otherwise only the Services that entered
// or left the node's announced or wanted sets change. A burst of BGPNodeState writes while
// 10k VIPs are announced so resyncs the Services each write is about, not all of them.
func NodeStateChanges(oldObj, newObj any) []string {
	o, n := summaryOrEmpty(oldObj), summaryOrEmpty(newObj)
	var keys []string
	if o.sessionCounts() != n.sessionCounts() {
		return []string{watch.AllServices, PeersKey}
	}
	if !slices.EqualFunc(o.Peers, n.Peers, samePeerState) {
		keys = append(keys, PeersKey)
	}
	keys = o.announced.symmetricDiff(n.announced, keys)
	keys = datapathNotReadyChanges(o.datapathNotReady, n.datapathNotReady, keys)
	return o.wanted.symmetricDiff(n.wanted, keys)
}

// summaryOrEmpty returns obj as a summary, an empty one when it is none (no object).
func summaryOrEmpty(obj any) *NodeSummary {
	if s, ok := obj.(*NodeSummary); ok && s != nil {
		return s
	}
	return &NodeSummary{}
}

// sessionCounts returns the sessions the node has configured and those established; the
// Announced messages count them cluster-wide.
func (s *NodeSummary) sessionCounts() (counts [2]int) {
	for _, p := range s.Peers {
		if p.Address == "" {
			continue // a BGPPeer this node could not configure (see its Invalid condition)
		}
		counts[0]++
		if p.State == v1alpha1.SessionEstablished {
			counts[1]++
		}
	}
	return counts
}

// samePeerState compares what the BGPPeers' conditions read of a session.
func samePeerState(a, b v1alpha1.BGPPeerState) bool {
	return a.Name == b.Name && a.Address == b.Address && a.State == b.State && a.LastError == b.LastError
}

// symmetricDiff appends to out the keys in exactly one of k and other (both sorted).
func (k keySet) symmetricDiff(other keySet, out []string) []string {
	i, j := 0, 0
	for i < len(k) && j < len(other) {
		switch c := strings.Compare(k[i], other[j]); {
		case c < 0:
			out = append(out, k[i])
			i++
		case c > 0:
			out = append(out, other[j])
			j++
		default:
			i, j = i+1, j+1
		}
	}
	out = append(out, k[i:]...)
	return append(out, other[j:]...)
}
