package tests

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/conformance/suite"
)

// C-ready-unknown (BGPNodeNotReadyKeepsNextHop): a node whose Ready condition is Unknown
// (late kubelet heartbeat, as the node lifecycle controller writes it) while its pods stay
// ready keeps its next hop for the VIP: no mass withdraw.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "BGPNodeNotReadyKeepsNextHop",
		ID:        "C-ready-unknown",
		Description: "a node whose Ready condition is Unknown (late kubelet heartbeat, as the node lifecycle " +
			"controller writes it) while its pods stay ready keeps its next hop for the VIP: no mass withdraw",
		Profile:  "LB-BGP",
		Features: []suite.Feature{suite.FeatureETPCluster},
		Test:     testNodeNotReadyKeepsNextHop,
	})
}

var errAlreadyUnknown = errors.New("already Unknown")

func testNodeNotReadyKeepsNextHop(t *testing.T, s *suite.Suite) {
	ctx := context.Background()
	ns := s.Namespace(t, "conf-ready-unknown")
	vip := backedService(t, s, ns, "web", "web")
	all := s.AllNodeAddrs()
	victim := s.Nodes[len(s.Nodes)-1].Name

	// The kubelet rewrites Ready every few seconds, so Ready=Unknown is written again
	// every second for the whole window: the node reads Unknown nearly all the time.
	setUnknown := func() error {
		n, err := s.Kube.CoreV1().Nodes().Get(ctx, victim, metav1.GetOptions{})
		if err != nil {
			return err
		}
		i := slices.IndexFunc(n.Status.Conditions, func(c corev1.NodeCondition) bool { return c.Type == corev1.NodeReady })
		if i < 0 {
			return fmt.Errorf("node %s has no Ready condition", victim)
		}
		if n.Status.Conditions[i].Status == corev1.ConditionUnknown {
			return errAlreadyUnknown
		}
		n.Status.Conditions[i].Status = corev1.ConditionUnknown
		n.Status.Conditions[i].Reason = "NodeStatusUnknown"
		n.Status.Conditions[i].Message = "Kubelet stopped posting node status (conformance test)"
		n.Status.Conditions[i].LastTransitionTime = metav1.Now()
		_, err = s.Kube.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	}
	window := s.Timeouts.Consistently + 10*time.Second
	deadline := time.Now().Add(window)
	writes, unknownSeen, checks := 0, 0, 0
	for time.Now().Before(deadline) {
		switch err := setUnknown(); {
		case err == nil:
			writes++
		case !errors.Is(err, errAlreadyUnknown):
			t.Logf("set Ready=Unknown on %s: %v", victim, err)
		}
		n, err := s.Kube.CoreV1().Nodes().Get(ctx, victim, metav1.GetOptions{})
		if err == nil {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionUnknown {
					unknownSeen++
				}
			}
		}
		checks++
		nh, err := s.RIBNextHops(vip)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(nh, all) {
			t.Fatalf("with %s Ready=Unknown the router has %s via %v, want every node %v", victim, vip, nh, all)
		}
		time.Sleep(time.Second)
	}
	if unknownSeen == 0 {
		t.Fatalf("node %s never read Ready=Unknown: the test proved nothing", victim)
	}
	t.Logf("%s read Ready=Unknown in %d of %d checks over %s (%d writes); next hops stayed %v", victim, unknownSeen, checks, window, writes, all)
}
