package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/conformance/suite"
)

// excludeLabel is the well-known label that takes a node out of external load balancers.
const excludeLabel = "node.kubernetes.io/exclude-from-external-load-balancers"

// C7: labelling a node with the exclusion label, or its condition NetworkUnavailable
// turning True, withdraws its next hop within T; removing the label, or the condition
// turning False, restores it.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "BGPNodeExclusion",
		ID:        "C7",
		Description: "labelling a node " + excludeLabel + ", then NetworkUnavailable=True, withdraws its next hop " +
			"for an ETP=Cluster VIP; removing the label, and NetworkUnavailable=False, restore it",
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

	setNetworkUnavailable := func(st corev1.ConditionStatus) error {
		patch, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": []corev1.NodeCondition{{
			Type: corev1.NodeNetworkUnavailable, Status: st, Reason: "ConformanceTest",
			Message: "set by the C7 conformance test", LastTransitionTime: metav1.Now(), LastHeartbeatTime: metav1.Now(),
		}}}})
		if err != nil {
			return err
		}
		_, err = s.Kube.CoreV1().Nodes().Patch(context.Background(), victim, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
		return err
	}
	t.Cleanup(func() {
		if err := setNetworkUnavailable(corev1.ConditionFalse); err != nil {
			t.Errorf("set NetworkUnavailable=False on %s: %v", victim, err)
		}
	})
	t.Logf("NetworkUnavailable=True on %s: its next hop leaves", victim)
	if err := setNetworkUnavailable(corev1.ConditionTrue); err != nil {
		t.Fatalf("set NetworkUnavailable=True on %s: %v", victim, err)
	}
	s.EventuallyNextHops(t, vip, rest)
	t.Logf("NetworkUnavailable=False on %s: its next hop returns", victim)
	if err := setNetworkUnavailable(corev1.ConditionFalse); err != nil {
		t.Fatalf("set NetworkUnavailable=False on %s: %v", victim, err)
	}
	s.EventuallyNextHops(t, vip, s.AllNodeAddrs())
}
