package status

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/daemon/announce"
	"github.com/bgplb/bgplb/daemon/bgp"
	"github.com/bgplb/bgplb/daemon/bgp/bgptest"
	crdfake "github.com/bgplb/bgplb/daemon/client/clientset/versioned/fake"
)

// hookAnnounce is an AnnounceSource with Service states (fakeAnnounce has prefixes only).
type hookAnnounce struct {
	states []announce.ServiceState
	gen    uint64
}

func (f *hookAnnounce) State() ([]announce.ServiceState, []announce.Prefix) { return f.states, nil }
func (f *hookAnnounce) PeerProblems() []announce.PeerProblem                { return nil }
func (f *hookAnnounce) Generation() uint64                                  { return f.gen }

func TestDatapathNotReadyHook(t *testing.T) {
	ctx := context.Background()
	crd := crdfake.NewSimpleClientset()
	sp := bgptest.NewFake()
	must(t, sp.Start(ctx, bgp.Global{ASN: 64513, RouterID: netip.MustParseAddr("198.18.0.13"), ListenPort: -1}))
	ann := &hookAnnounce{states: []announce.ServiceState{
		{Key: "default/web", Reason: announce.ReasonNoEligibleEndpoints, Message: "DatapathNotReady: 1 local endpoint(s) not datapath-ready (pod default/web-1: attach failed)"},
		{Key: "default/db", Reason: announce.ReasonNoEligibleEndpoints, Message: "NoEligibleEndpoints: none"},
	}}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node3", UID: "uid-3"}}
	w := NewNodeStateWriter(crd, "node3", sp, ann, func() *corev1.Node { return node }, time.Millisecond)
	must(t, w.Sync(ctx))
	got, err := crd.BgplbV1alpha1().BGPNodeStates().Get(ctx, "node3", metav1.GetOptions{})
	must(t, err)
	sum := SummarizeNodeState(got)
	if len(sum.datapathNotReady) != 1 || !strings.Contains(sum.datapathNotReady["default/web"], "attach failed") {
		t.Fatalf("annotation %q parsed to %v, want default/web only", got.Annotations[AnnotationDatapathNotReady], sum.datapathNotReady)
	}
	if keys := NodeStateChanges(nil, sum); !slices.Contains(keys, "default/web") {
		t.Fatalf("NodeStateChanges = %v, want default/web", keys)
	}
	idx := nodeStateIndex{nodes: []*NodeSummary{sum}}
	if held := idx.datapathNotReadyNodes("default/web"); len(held) != 1 || !strings.HasPrefix(held[0], "node3: 1 local endpoint(s)") {
		t.Fatalf("datapathNotReadyNodes = %v", held)
	}

	// Fixed: the annotation goes away.
	ann.states = ann.states[1:]
	ann.gen++
	must(t, w.Sync(ctx))
	got, err = crd.BgplbV1alpha1().BGPNodeStates().Get(ctx, "node3", metav1.GetOptions{})
	must(t, err)
	if _, ok := got.Annotations[AnnotationDatapathNotReady]; ok {
		t.Fatalf("annotation still present: %v", got.Annotations)
	}
}
