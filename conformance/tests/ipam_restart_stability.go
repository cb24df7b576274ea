package tests

import (
	"context"
	"fmt"
	"net/netip"
	"syscall"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/conformance/suite"
	lbv1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// A5: five restarts of every bgplbd (the allocator's leader among them): every Service
// keeps its exact IP and its IPAllocated condition is never rewritten, while a Service created after each
// round gets an IP (the allocator is back, so the silence is not an outage).
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "IPAMRestartStability",
		ID:        "A5",
		Description: "five rounds of restarting bgplbd on every node: three allocated Services (one with a " +
			"requested IP) keep their exact IP and IPAllocated condition, and a Service created after each round is allocated",
		Needs:    []suite.Adapter{suite.AdapterFaults},
		Profile:  "LB-IPAM",
		Features: []suite.Feature{suite.FeatureIPv4Pool, suite.FeatureSpecificIP, suite.FeatureDaemonRestart},
		Slow:     true,
		Test:     testRestartStability,
	})
}

func testRestartStability(t *testing.T, s *suite.Suite) {
	if s.Faults == nil {
		t.Skip("this cluster provides no fault injection (Suite.Faults)")
	}
	ctx := context.Background()
	ns := s.Namespace(t, "conf-restart-stability")
	// No backends: nothing is announced, so no announcement status can change either;
	// what is left to write is the allocation.
	s.LBService(t, ns, "a", "none")
	s.LBService(t, ns, "b", "none", suite.WithLoadBalancerIP(vipAt(s, 100).String()))
	s.LBService(t, ns, "c", "none", suite.WithLocal)
	type kept struct {
		ip    netip.Addr
		rv    string
		alloc metav1.Condition // bgplb.io/IPAllocated
	}
	want := map[string]kept{}
	for _, name := range []string{"a", "b", "c"} {
		s.WaitIngress(t, ns, name)
	}
	// Let the allocator finish its writes (conditions, events) before recording.
	suite.Eventually(t, s.Timeouts.Converge, "allocations settled", func() error {
		for _, name := range []string{"a", "b", "c"} {
			svc := s.Service(t, ns, name)
			ips := suite.IngressIPs(svc)
			if len(ips) != 1 {
				return fmt.Errorf("%s has ingress %v", name, ips)
			}
			k, seen := want[name]
			if !seen || k.rv != svc.ResourceVersion {
				want[name] = kept{ip: ips[0], rv: svc.ResourceVersion, alloc: allocCondition(svc)}
				return fmt.Errorf("%s still being written", name)
			}
		}
		return nil
	})
	if want["b"].ip != vipAt(s, 100) {
		t.Fatalf("b asked for %s and got %s", vipAt(s, 100), want["b"].ip)
	}
	t.Logf("allocations: a=%s b=%s (requested) c=%s", want["a"].ip, want["b"].ip, want["c"].ip)

	writes := 0
	for round := 1; round <= 5; round++ {
		for _, n := range s.Nodes {
			if err := s.Faults.SignalDaemon(ctx, n.Name, syscall.SIGTERM, true); err != nil {
				t.Fatalf("round %d: restart bgplbd on %s: %v", round, n.Name, err)
			}
		}
		probe := fmt.Sprintf("probe-%d", round)
		s.LBService(t, ns, probe, "none")
		s.WaitIngress(t, ns, probe)
		for name, k := range want {
			svc := s.Service(t, ns, name)
			if ips := suite.IngressIPs(svc); len(ips) != 1 || ips[0] != k.ip {
				t.Fatalf("round %d: %s's ingress is %v, was %s", round, name, ips, k.ip)
			}
			// The allocation — ingress and IPAllocated, to its transition time — must not
			// move. Other status (bgplb.io/Announced) may be rewritten: count it.
			if got := allocCondition(svc); got != k.alloc {
				t.Fatalf("round %d: %s's IPAllocated changed: %+v, was %+v", round, name, got, k.alloc)
			}
			if svc.ResourceVersion != k.rv {
				writes++
				k.rv = svc.ResourceVersion
				want[name] = k
			}
		}
		t.Logf("round %d: every bgplbd restarted, %s allocated, a/b/c keep their allocation", round, probe)
	}
	t.Logf("a/b/c were written %d times in 5 rounds, none of them touching the allocation", writes)
}

// allocCondition returns the Service's bgplb.io/IPAllocated condition (zero if none).
func allocCondition(svc *corev1.Service) metav1.Condition {
	for _, c := range svc.Status.Conditions {
		if c.Type == lbv1.ConditionIPAllocated {
			return c
		}
	}
	return metav1.Condition{}
}
