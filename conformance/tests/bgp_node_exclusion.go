package tests

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/conformance/suite"
)

// excludeLabel is the well-known label that takes a node out of external load balancers.
const excludeLabel = "node.kubernetes.io/exclude-from-external-load-balancers"

// C7: labelling a node with the exclusion label withdraws its next hop within T;
// removing the label restores it.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "BGPNodeExclusion",
		ID:        "C7",
		Description: "labelling a node " + excludeLabel + " withdraws its next hop for an ETP=Cluster VIP; " +
			"removing the label restores it",
		Profile:  "LB-BGP",
		Features: []suite.Feature{suite.FeatureETPCluster},
		Test:     testNodeExclusion,
	})
}

func testNodeExclusion(t *testing.T, s *suite.Suite) {
	ns := s.Namespace(t, "conf-node-exclusion")
	vip := backedService(t, s, ns, "web", "web")
	victim := s.Nodes[len(s.Nodes)-1].Name
	rest := slices.DeleteFunc(s.AllNodeAddrs(), func(a netip.Addr) bool { return a == s.NodeAddr(victim) })

	setLabel := func(value *string) error {
		v := "null"
		if value != nil {
			v = fmt.Sprintf("%q", *value)
		}
		patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%s}}}`, excludeLabel, v)
		_, err := s.Kube.CoreV1().Nodes().Patch(context.Background(), victim, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		return err
	}
	t.Cleanup(func() {
		if err := setLabel(nil); err != nil {
			t.Errorf("remove %s from %s: %v", excludeLabel, victim, err)
		}
	})

	t.Logf("label %s: its next hop leaves", victim)
	if err := setLabel(ptr.To("true")); err != nil {
		t.Fatalf("label %s: %v", victim, err)
	}
	s.EventuallyNextHops(t, vip, rest)

	t.Logf("remove the label from %s: its next hop returns", victim)
	if err := setLabel(nil); err != nil {
		t.Fatalf("unlabel %s: %v", victim, err)
	}
	s.EventuallyNextHops(t, vip, s.AllNodeAddrs())
}
