package tests

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/conformance/suite"
)

// C-max-prefix (BGPMaxPrefix): a router that sends a node more prefixes than the BGPPeer's
// maxPrefixes (default 100) gets its session shut down, and every node's BGPNodeState says
// why; changing the BGPPeer brings it back.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "BGPMaxPrefix",
		ID:        "C-max-prefix",
		Description: "a router that sends a node more prefixes than the BGPPeer's maxPrefixes (default 100) gets " +
			"its session shut down, and every node's BGPNodeState says why; changing the BGPPeer brings it back",
		Profile:  "LB-BGP",
		Features: []suite.Feature{suite.FeatureNoInboundRoutes},
		Test:     testMaxPrefix,
	})
}

// leakPrefixes is how many /32s the router leaks (198.18.200.0/24: the lab's address
// plan, used by nothing else).
const leakPrefixes = 150

func testMaxPrefix(t *testing.T, s *suite.Suite) {
	orig := originator(t, s)
	ctx := context.Background()
	s.WaitSessions(t)
	peers, err := s.LB.BgplbV1alpha1().BGPPeers().List(ctx, metav1.ListOptions{})
	if err != nil || len(peers.Items) == 0 {
		t.Fatalf("list BGPPeers: %v (%d)", err, len(peers.Items))
	}
	peer := peers.Items[0]
	limit := int32(100)
	if peer.Spec.MaxPrefixes != nil {
		limit = *peer.Spec.MaxPrefixes
	}
	if leakPrefixes <= limit {
		t.Fatalf("BGPPeer %s allows %d prefixes; the test leaks only %d", peer.Name, limit, leakPrefixes)
	}

	leak := make([]netip.Prefix, 0, leakPrefixes)
	for i := 0; i < leakPrefixes; i++ {
		leak = append(leak, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 200, byte(i)}), 32))
	}
	// Once the router stops leaking (originate's cleanup, first), the sessions stay shut
	// down until the BGPPeer changes: change it and back.
	t.Cleanup(func() {
		for _, n := range []int32{limit + 1, limit} {
			p, err := s.LB.BgplbV1alpha1().BGPPeers().Get(ctx, peer.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			p.Spec.MaxPrefixes = ptr.To(n)
			if _, err := s.LB.BgplbV1alpha1().BGPPeers().Update(ctx, p, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			s.WaitSessions(t)
		}
	})
	originate(t, s, orig, leak)

	suite.Eventually(t, s.Timeouts.Converge, "every node reports max-prefix in its BGPNodeState", func() error {
		for _, n := range s.Nodes {
			st, err := s.LB.BgplbV1alpha1().BGPNodeStates().Get(ctx, n.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			found := false
			for _, p := range st.Status.Peers {
				if p.Name == peer.Name && p.State != "Established" && strings.Contains(p.LastError, "max-prefix") &&
					strings.Contains(p.LastError, fmt.Sprint(limit)) {
					found = true
					if n.Name == s.Nodes[0].Name {
						t.Logf("%s: %s %s: %s", n.Name, p.Name, p.State, p.LastError)
					}
				}
			}
			if !found {
				return fmt.Errorf("%s: peers %+v", n.Name, st.Status.Peers)
			}
		}
		return nil
	})
}
