package status

import (
	"slices"
	"testing"
	"unsafe"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
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
