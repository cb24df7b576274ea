package tests

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/bgplb/bgplb/conformance/suite"
	lbv1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// A7 (IPAMSharedVIP): Services with one sharing key, disjoint ports and identical selectors
// share one IP; an overlapping port, or ETP=Local with different selectors, does not get
// that IP.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "IPAMSharedVIP",
		ID:        "A7",
		Description: "Services with one sharing key, disjoint ports and identical selectors share one IP; an " +
			"overlapping port, or ETP=Local with different selectors, does not get that IP",
		Profile:  "LB-IPAM",
		Features: []suite.Feature{suite.FeatureSharedIP},
		Test:     testIPAMSharedVIP,
	})
}

func testIPAMSharedVIP(t *testing.T, s *suite.Suite) {
	ns := s.Namespace(t, "conf-ipam-shared")
	key := func(k string) suite.ServiceOption {
		return suite.WithAnnotations(map[string]string{lbv1.AnnotationSharingKey: k})
	}
	s.LBService(t, ns, "a80", "web", key("a7-cluster"), suite.WithPort(80))
	s.LBService(t, ns, "a81", "web", key("a7-cluster"), suite.WithPort(81))
	v := s.WaitIngress(t, ns, "a80")
	s.WaitIngressIs(t, ns, "a81", v)
	t.Logf("a80 and a81 share %s", v)

	t.Log("same key, port 80 again: not that IP")
	s.LBService(t, ns, "a80-again", "web", key("a7-cluster"), suite.WithPort(80))
	s.WaitAllocCondition(t, ns, "a80-again", "", "")

	t.Log("same key, ETP=Local, different selectors: not the same IP")
	s.LBService(t, ns, "l80", "web", key("a7-local"), suite.WithPort(80), suite.WithLocal)
	lv := s.WaitIngress(t, ns, "l80")
	s.LBService(t, ns, "l81", "other", key("a7-local"), suite.WithPort(81), suite.WithLocal)
	s.WaitAllocCondition(t, ns, "l81", "", "")
	notHolding(t, s, ns, map[string]netip.Addr{"a80-again": v, "l81": lv})

	// The first pair kept their shared address throughout.
	s.WaitIngressIs(t, ns, "a80", v)
	s.WaitIngressIs(t, ns, "a81", v)
	s.WaitIngressIs(t, ns, "l80", lv)
}

// notHolding asserts that no Service (name → IP) gets its IP for the consistency window.
func notHolding(t *testing.T, s *suite.Suite, ns string, forbidden map[string]netip.Addr) {
	t.Helper()
	suite.Consistently(t, s.Timeouts.Consistently, fmt.Sprintf("Services of %s never hold %v", ns, forbidden), func() error {
		for name, ip := range forbidden {
			svc, err := s.Kube.CoreV1().Services(ns).Get(ctxBG, name, getOpts)
			if err != nil {
				return err
			}
			if slices.Contains(suite.IngressIPs(svc), ip) {
				return fmt.Errorf("%s holds %s: %+v (conditions %+v)", name, ip, svc.Status.LoadBalancer.Ingress, svc.Status.Conditions)
			}
		}
		return nil
	})
}
