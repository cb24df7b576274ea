package status

import (
	"slices"
	"testing"
	"unsafe"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/watch"
)

// TestSummarizeNodeState: a Service counts as announced when any of its prefixes goes to
// a peer, as wanted only when none does; keys are deduplicated and share one allocation;
// the transform summarizes BGPNodeStates and passes other objects through.
func TestSummarizeNodeState(t *testing.T) {
	ns := &v1alpha1.BGPNodeState{
		ObjectMeta: metav1.ObjectMeta{Name: "node1", ResourceVersion: "7", ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "bgplbd"}}},
		Status: v1alpha1.BGPNodeStateStatus{
			Peers: []v1alpha1.BGPPeerState{{Name: "router", Address: "198.18.0.1", State: v1alpha1.SessionEstablished}},
			Prefixes: []v1alpha1.AnnouncedPrefix{
				{Prefix: "198.18.64.1/32", Services: []string{"web/a", "web/shared"}, Peers: []string{"router"}},
				{Prefix: "198.18.64.2/32", Services: []string{"web/b"}},                             // sessions down
				{Prefix: "2001:db8::2/128", Services: []string{"web/b"}},                            // same Service, other family
				{Prefix: "198.18.64.3/32", Services: []string{"web/shared", "web/c"}},               // web/shared announced elsewhere
				{Prefix: "2001:db8::1/128", Services: []string{"web/a"}, Peers: []string{"router"}}, // duplicate key
			},
		},
	}
	obj, err := NodeSummaryTransform(ns)
	if err != nil {
		t.Fatal(err)
	}
	s, ok := obj.(*NodeSummary)
	if !ok {
		t.Fatalf("transform returned %T", obj)
	}
	if s.Name != "node1" || s.ResourceVersion != "7" || s.ManagedFields != nil || len(s.Peers) != 1 || s.Peers[0].Name != "router" {
		t.Errorf("meta or peers not kept: %+v", s)
	}
	if want := (keySet{"web/a", "web/shared"}); !slices.Equal(s.announced, want) {
		t.Errorf("announced = %q, want %q", s.announced, want)
	}
	if want := (keySet{"web/b", "web/c"}); !slices.Equal(s.wanted, want) {
		t.Errorf("wanted = %q, want %q", s.wanted, want)
	}
	for key, want := range map[string][2]bool{"web/a": {true, false}, "web/shared": {true, false}, "web/b": {false, true}, "web/c": {false, true}, "web/x": {}} {
		if got := [2]bool{s.Announces(key), s.Wants(key)}; got != want {
			t.Errorf("%s: Announces, Wants = %v, want %v", key, got, want)
		}
	}
	// One allocation per set: the keys are consecutive in memory.
	if end := unsafe.StringData(s.announced[0]); unsafe.Add(unsafe.Pointer(end), len(s.announced[0])) != unsafe.Pointer(unsafe.StringData(s.announced[1])) {
		t.Error("announced keys do not share one allocation")
	}
	if SummarizeNodeState(nil) != nil {
		t.Error("summary of nil is not nil")
	}
	peer := &v1alpha1.BGPPeer{}
	if obj, _ := NodeSummaryTransform(peer); obj != peer {
		t.Error("transform changed an object that is not a BGPNodeState")
	}
}

// TestNodeStateChanges: a node's change resyncs the Services that entered or left its
// announced or wanted sets, the BGPPeers when a session's state or error changed, and
// every Service when the session counts (in every message) changed.
func TestNodeStateChanges(t *testing.T) {
	up := v1alpha1.BGPPeerState{Name: "router", Address: "198.18.0.1", State: v1alpha1.SessionEstablished, PrefixesSent: 2}
	state := func(rv string, peers []v1alpha1.BGPPeerState, prefixes ...v1alpha1.AnnouncedPrefix) *NodeSummary {
		return SummarizeNodeState(&v1alpha1.BGPNodeState{ObjectMeta: metav1.ObjectMeta{Name: "node1", ResourceVersion: rv},
			Status: v1alpha1.BGPNodeStateStatus{Peers: peers, Prefixes: prefixes}})
	}
	sent := func(p v1alpha1.BGPPeerState, n int64) v1alpha1.BGPPeerState { p.PrefixesSent = n; return p }
	withErr := func(p v1alpha1.BGPPeerState, e string) v1alpha1.BGPPeerState { p.LastError = e; return p }
	down := func(p v1alpha1.BGPPeerState) v1alpha1.BGPPeerState { p.State = "Active"; return p }
	a := v1alpha1.AnnouncedPrefix{Prefix: "198.18.64.1/32", Services: []string{"web/a"}, Peers: []string{"router"}}
	b := v1alpha1.AnnouncedPrefix{Prefix: "198.18.64.2/32", Services: []string{"web/b"}, Peers: []string{"router"}}
	bWanted := v1alpha1.AnnouncedPrefix{Prefix: "198.18.64.2/32", Services: []string{"web/b"}}
	c := v1alpha1.AnnouncedPrefix{Prefix: "198.18.64.3/32", Services: []string{"web/c"}, Peers: []string{"router"}}
	base := state("1", []v1alpha1.BGPPeerState{up}, a, b)

	for _, tc := range []struct {
		name     string
		old, new any
		want     []string
	}{
		{"same sets, prefix count moved", base, state("2", []v1alpha1.BGPPeerState{sent(up, 3)}, a, b), nil},
		{"one Service added, one removed", base, state("2", []v1alpha1.BGPPeerState{up}, a, c), []string{"web/b", "web/c"}},
		{"announced to wanted", base, state("2", []v1alpha1.BGPPeerState{up}, a, bWanted), []string{"web/b", "web/b"}},
		{"peer error, counts unchanged", base, state("2", []v1alpha1.BGPPeerState{withErr(up, "hold timer expired")}, a, b), []string{PeersKey}},
		{"session down", base, state("2", []v1alpha1.BGPPeerState{down(up)}, a, b), []string{watch.AllServices, PeersKey}},
		{"node added", nil, base, []string{watch.AllServices, PeersKey}},
		{"node without sessions deleted", state("1", nil, a), nil, []string{"web/a"}},
		{"not a summary", &v1alpha1.BGPPeer{}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := NodeStateChanges(tc.old, tc.new); !slices.Equal(got, tc.want) {
				t.Errorf("NodeStateChanges = %q, want %q", got, tc.want)
			}
		})
	}
}
