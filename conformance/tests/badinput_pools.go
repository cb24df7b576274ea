package tests

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/conformance/suite"
	lbv1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// G1 (BadInputPools): invalid pools (bad CIDR, /33, host bits, start > stop, mixed
// families, cidr and start, no blocks) are rejected by the API server naming the field; a
// pool whose own blocks overlap is Invalid and hands out nothing; an existing Service keeps
// its IP and route.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "BadInputPools",
		ID:        "G1",
		Description: "invalid pools (bad CIDR, /33, host bits, start > stop, mixed families, cidr and start, no " +
			"blocks) are rejected by the API server naming the field; a pool whose own blocks overlap is " +
			"Invalid and hands out nothing; an existing Service keeps its IP and route",
		Profile:  "LB-IPAM",
		Features: []suite.Feature{suite.FeatureIPv4Pool},
		Test:     testBadInputPools,
	})
}

func testBadInputPools(t *testing.T, s *suite.Suite) {
	ns := s.Namespace(t, "conf-bad-pools")
	vip := backedService(t, s, ns, "good", "web")
	allNodes := s.AllNodeAddrs()

	cases := []struct {
		name   string
		blocks []lbv1.IPBlock
		field  string
	}{
		{"not-an-ip", []lbv1.IPBlock{{CIDR: "100.200.300.400/24"}}, "spec.blocks[0].cidr"},
		{"prefix-33", []lbv1.IPBlock{{CIDR: vipAt(s, 128).String() + "/33"}}, "spec.blocks[0].cidr"},
		{"host-bits", []lbv1.IPBlock{cidrAt(s, 144, 29), {CIDR: vipAt(s, 129).String() + "/25"}}, "spec.blocks[1].cidr"},
		{"start-after-stop", []lbv1.IPBlock{rangeAt(s, 151, 144)}, "spec.blocks[0].stop"},
		{"mixed-families", []lbv1.IPBlock{{Start: vipAt(s, 144).String(), Stop: "2001:db8:ffff::1"}}, "spec.blocks[0].stop"},
		{"cidr-and-range", []lbv1.IPBlock{{CIDR: cidrAt(s, 144, 29).CIDR, Start: vipAt(s, 144).String(), Stop: vipAt(s, 145).String()}}, "spec.blocks[0]"},
		{"half-range", []lbv1.IPBlock{{Start: vipAt(s, 144).String()}}, "spec.blocks[0]"},
		{"no-blocks", []lbv1.IPBlock{}, "spec.blocks"},
		{"no-blocks-null", nil, "spec.blocks"},
	}
	pools := s.LB.BgplbV1alpha1().LoadBalancerIPPools()
	for _, c := range cases {
		p := &lbv1.LoadBalancerIPPool{ObjectMeta: metav1.ObjectMeta{Name: "conf-g1-" + c.name},
			Spec: lbv1.LoadBalancerIPPoolSpec{Blocks: c.blocks}}
		_, err := pools.Create(ctxBG, p, metav1.CreateOptions{})
		if err == nil {
			s.DeletePool(t, p.Name)
		}
		suite.ExpectInvalid(t, "pool "+c.name, err, c.field)
	}

	t.Log("a pool whose own blocks overlap: Invalid (or rejected), no address handed out")
	name := "conf-g1-self-overlap"
	p := &lbv1.LoadBalancerIPPool{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: lbv1.LoadBalancerIPPoolSpec{Blocks: []lbv1.IPBlock{cidrAt(s, 144, 29), rangeAt(s, 150, 152)}}}
	_, err := pools.Create(ctxBG, p, metav1.CreateOptions{})
	switch {
	case apierrors.IsInvalid(err):
		t.Logf("rejected at create: %v", err)
	case err != nil:
		t.Fatalf("create pool %s: %v", name, err)
	default:
		t.Cleanup(func() { s.DeletePool(t, name) })
		c := s.WaitPoolCondition(t, name, lbv1.PoolConditionInvalid, metav1.ConditionTrue)
		t.Logf("Invalid: %s: %s", c.Reason, c.Message)
		s.WaitPoolCondition(t, name, lbv1.PoolConditionReady, metav1.ConditionFalse)
		// Ask for it by name and for one of its addresses: nothing is handed out.
		s.LBService(t, ns, "from-invalid", "web", suite.WithAnnotations(map[string]string{lbv1.AnnotationPool: name}))
		s.LBService(t, ns, "ip-in-invalid", "web", suite.WithLoadBalancerIP(vipAt(s, 145).String()))
		s.WaitAllocCondition(t, ns, "from-invalid", metav1.ConditionFalse, "")
		s.WaitAllocCondition(t, ns, "ip-in-invalid", metav1.ConditionFalse, "")
		suite.Consistently(t, s.Timeouts.Consistently, "nothing from the invalid pool; the good Service undisturbed", func() error {
			for _, n := range []string{"from-invalid", "ip-in-invalid"} {
				svc, err := s.Kube.CoreV1().Services(ns).Get(ctxBG, n, getOpts)
				if err != nil {
					return err
				}
				if len(svc.Status.LoadBalancer.Ingress) > 0 {
					return fmt.Errorf("%s got %+v", n, svc.Status.LoadBalancer.Ingress)
				}
			}
			return goodUndisturbed(s, ns, "good", vip, allNodes)
		})
	}

	t.Log("after: the good Service keeps its IP and route")
	suite.Consistently(t, s.Timeouts.Consistently/3, "good Service undisturbed", func() error {
		return goodUndisturbed(s, ns, "good", vip, allNodes)
	})
}

// goodUndisturbed checks that the Service still holds vip and the router still has it
// from exactly nodes.
func goodUndisturbed(s *suite.Suite, ns, name string, vip netip.Addr, nodes []netip.Addr) error {
	if err := sameIngress(s, ns, name, vip); err != nil {
		return err
	}
	nh, err := s.RIBNextHops(vip)
	if err != nil {
		return err
	}
	if !slices.Equal(nh, nodes) {
		return fmt.Errorf("router has %s via %v, want %v", vip, nh, nodes)
	}
	return nil
}
