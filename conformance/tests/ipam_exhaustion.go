package tests

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/conformance/suite"
	lbv1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// A3 (IPAMExhaustionAndRelease): a /32 pool: the first Service gets the IP, the second none
// (PoolExhausted, event) for the consistency window; turning the first into ClusterIP hands
// the IP to the second, and the router then shows it from the second Service's eligible
// nodes.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "IPAMExhaustionAndRelease",
		ID:        "A3",
		Description: "a /32 pool: the first Service gets the IP, the second none (PoolExhausted, event) for the " +
			"consistency window; turning the first into ClusterIP hands the IP to the second, and the router " +
			"then shows it from the second Service's eligible nodes",
		Profile:  "LB-IPAM",
		Features: []suite.Feature{suite.FeatureIPv4Pool, suite.FeatureIPRelease},
		Test:     testIPAMExhaustion,
	})
}

func testIPAMExhaustion(t *testing.T, s *suite.Suite) {
	ns := s.Namespace(t, "conf-ipam-exhaustion")
	s.Pool(t, "conf-a3", []lbv1.IPBlock{cidrAt(s, 130, 32)})
	only := vipAt(s, 130)
	fromPool := suite.WithAnnotations(map[string]string{lbv1.AnnotationPool: "conf-a3"})

	// svc1 is Cluster (announced by every node); svc2 is Local with its only pod on the
	// first node, so the router's next hops tell whose VIP it is.
	vip := backedService(t, s, ns, "svc1", "web", fromPool)
	if vip != only {
		t.Fatalf("svc1 got %s, want the pool's only address %s", vip, only)
	}
	s.LBService(t, ns, "svc2", "web", fromPool, suite.WithLocal)
	cond := s.WaitAllocCondition(t, ns, "svc2", metav1.ConditionFalse, lbv1.ReasonPoolExhausted)
	t.Logf("svc2: %s: %s", cond.Reason, cond.Message)
	s.WaitServiceEvent(t, ns, "svc2", lbv1.ReasonPoolExhausted)
	s.ConsistentlyNoIngress(t, ns, "svc2", s.Timeouts.Consistently)

	t.Log("svc1 → ClusterIP: svc2 gets the address, announced only from its pod's node")
	s.UpdateService(t, ns, "svc1", suite.ToType(corev1.ServiceTypeClusterIP))
	s.WaitIngressIs(t, ns, "svc1")
	s.WaitIngressIs(t, ns, "svc2", only)
	s.WaitAllocCondition(t, ns, "svc2", metav1.ConditionTrue, lbv1.ReasonAllocated)
	s.EventuallyNextHops(t, only, s.NodeAddrs(s.Nodes[0].Name))
}
