package tests

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/conformance/suite"
	lbv1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// A1 (IPAMBasicAllocation): a LoadBalancer Service of our class gets exactly one IPv4
// ingress IP inside a pool, ipMode nil or VIP, no hostname, and bgplb.io/IPAllocated
// True/Allocated.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "IPAMBasicAllocation",
		ID:        "A1",
		Description: "a LoadBalancer Service of our class gets exactly one IPv4 ingress IP inside a pool, " +
			"ipMode nil or VIP, no hostname, and bgplb.io/IPAllocated True/Allocated",
		Profile:  "LB-IPAM",
		Features: []suite.Feature{suite.FeatureIPv4Pool},
		Test:     testIPAMBasic,
	})
}

func testIPAMBasic(t *testing.T, s *suite.Suite) {
	ctx := context.Background()
	ns := s.Namespace(t, "conf-ipam-basic")
	s.LBService(t, ns, "basic", "basic")
	vip := s.WaitIngress(t, ns, "basic")
	cond := s.WaitAllocCondition(t, ns, "basic", metav1.ConditionTrue, lbv1.ReasonAllocated)
	t.Logf("allocated %s: %s", vip, cond.Message)

	svc := s.Service(t, ns, "basic")
	ings := svc.Status.LoadBalancer.Ingress
	if len(ings) != 1 {
		t.Fatalf("want 1 ingress entry for a single-stack IPv4 Service, got %+v", ings)
	}
	ing := ings[0]
	if ing.Hostname != "" {
		t.Errorf("ingress has hostname %q", ing.Hostname)
	}
	if ing.IPMode != nil && *ing.IPMode != corev1.LoadBalancerIPModeVIP {
		t.Errorf("ingress ipMode is %s, want nil or VIP", *ing.IPMode)
	}
	if len(ing.Ports) != 0 {
		t.Errorf("ingress has ports %+v", ing.Ports)
	}
	if !vip.Is4() {
		t.Errorf("ingress %s is not IPv4", vip)
	}
	pools, err := s.AddrPools(ctx, vip)
	if err != nil {
		t.Fatal(err)
	}
	if len(pools) != 1 {
		t.Errorf("ingress %s should be inside exactly one pool, is in %v", vip, pools)
	}
}
