package status

import (
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
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
