package tests

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/conformance/suite"
	lbv1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// G2 (BadInputOverlappingPools): a pool overlapping an older one is Conflicting and hands
// out nothing while the older keeps serving; no IP is ever held by two Services; fixing the
// overlap makes the newer pool Ready and its Services get addresses.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "BadInputOverlappingPools",
		ID:        "G2",
		Description: "a pool overlapping an older one is Conflicting and hands out nothing while the older keeps " +
			"serving; no IP is ever held by two Services; fixing the overlap makes the newer pool Ready and its " +
			"Services get addresses",
		Profile:  "LB-IPAM",
		Features: []suite.Feature{suite.FeatureIPv4Pool},
		Test:     testBadInputOverlappingPools,
	})
}

func testBadInputOverlappingPools(t *testing.T, s *suite.Suite) {
	ns := s.Namespace(t, "conf-bad-overlap")
	// Age is creationTimestamp (whole seconds), then name: the names sort in the same
	// order, and the second pool is created in a later second.
	older, newer := "conf-g2-first", "conf-g2-second"
	first := s.Pool(t, older, []lbv1.IPBlock{cidrAt(s, 160, 29)}) // .160-.167
	s.WaitPoolCondition(t, older, lbv1.PoolConditionReady, metav1.ConditionTrue)
	time.Sleep(time.Until(first.CreationTimestamp.Add(1100 * time.Millisecond)))
	s.Pool(t, newer, []lbv1.IPBlock{cidrAt(s, 160, 28)}) // .160-.175, overlaps older
	c := s.WaitPoolCondition(t, newer, lbv1.PoolConditionConflicting, metav1.ConditionTrue)
	t.Logf("%s Conflicting: %s: %s", newer, c.Reason, c.Message)
	s.WaitPoolCondition(t, newer, lbv1.PoolConditionReady, metav1.ConditionFalse)
	s.WaitPoolCondition(t, older, lbv1.PoolConditionReady, metav1.ConditionTrue)
	s.WaitPoolCondition(t, older, lbv1.PoolConditionConflicting, metav1.ConditionFalse)

	pool := func(p string) suite.ServiceOption {
		return suite.WithAnnotations(map[string]string{lbv1.AnnotationPool: p})
	}
	olderBlock := netip.MustParsePrefix(cidrAt(s, 160, 29).CIDR)
	onlyInNewer := vipAt(s, 170)
	for _, n := range []string{"old-1", "old-2", "old-3"} {
		s.LBService(t, ns, n, "web", pool(older))
	}
	s.LBService(t, ns, "new-1", "web", pool(newer))
	s.LBService(t, ns, "new-2", "web", pool(newer))
	s.LBService(t, ns, "new-ip", "web", suite.WithLoadBalancerIP(onlyInNewer.String()))
	held := map[string]netip.Addr{}
	for _, n := range []string{"old-1", "old-2", "old-3"} {
		held[n] = s.WaitIngress(t, ns, n)
		if !olderBlock.Contains(held[n]) {
			t.Errorf("%s got %s, outside %s's %s", n, held[n], older, olderBlock)
		}
	}
	for _, n := range []string{"new-1", "new-2", "new-ip"} {
		c := s.WaitAllocCondition(t, ns, n, metav1.ConditionFalse, "")
		t.Logf("%s: %s: %s", n, c.Reason, c.Message)
	}
	suite.Consistently(t, s.Timeouts.Consistently, "conflicting pool hands out nothing; no IP held twice", func() error {
		for _, n := range []string{"new-1", "new-2", "new-ip"} {
			svc, err := s.Kube.CoreV1().Services(ns).Get(ctxBG, n, getOpts)
			if err != nil {
				return err
			}
			if len(svc.Status.LoadBalancer.Ingress) > 0 {
				return fmt.Errorf("%s got %+v from the conflicting pool", n, svc.Status.LoadBalancer.Ingress)
			}
		}
		return s.IngressUnique(ctxBG)
	})

	t.Log("fix the overlap: the newer pool becomes Ready and serves its Services")
	s.UpdatePool(t, newer, func(p *lbv1.LoadBalancerIPPool) {
		p.Spec.Blocks = []lbv1.IPBlock{cidrAt(s, 168, 29)} // .168-.175
	})
	s.WaitPoolCondition(t, newer, lbv1.PoolConditionConflicting, metav1.ConditionFalse)
	s.WaitPoolCondition(t, newer, lbv1.PoolConditionReady, metav1.ConditionTrue)
	newerBlock := netip.MustParsePrefix(cidrAt(s, 168, 29).CIDR)
	for _, n := range []string{"new-1", "new-2"} {
		ip := s.WaitIngress(t, ns, n)
		if !newerBlock.Contains(ip) {
			t.Errorf("%s got %s, outside %s's %s", n, ip, newer, newerBlock)
		}
	}
	s.WaitIngressIs(t, ns, "new-ip", onlyInNewer)
	for n, ip := range held {
		if err := sameIngress(s, ns, n, ip); err != nil {
			t.Error(err)
		}
	}
	if err := s.IngressUnique(ctxBG); err != nil {
		t.Error(err)
	}
}
