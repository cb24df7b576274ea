package tests

import (
	"context"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/conformance/suite"
)

// B3: a LoadBalancer Service without a loadBalancerClass is ignored in explicit-class
// mode (no IP, no write, no route) and handled in default-class mode (an IP and a
// route); the suite's mode is in the report.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "ClassNil",
		ID:        "B3",
		Description: "a LoadBalancer Service with no loadBalancerClass: explicit-class mode leaves it untouched " +
			"(no IP, no write, no event, no route); default-class mode gives it an IP announced from every node",
		Profile:  "LB-BGP",
		Features: []suite.Feature{suite.FeatureClassSelection},
		Test:     testClassNil,
	})
}

func testClassNil(t *testing.T, s *suite.Suite) {
	ctx := context.Background()
	ns := s.Namespace(t, "conf-nil-class")
	d := s.Backend(t, ns, "noclass", s.Nodes[0].Name, 1)
	s.WaitPods(t, ns, d, 1)
	t.Logf("mode: %s", s.Mode)
	switch s.Mode {
	case suite.ModeDefaultClass:
		s.LBService(t, ns, "noclass", "noclass", suite.WithClass(nil))
		vip := s.WaitIngress(t, ns, "noclass")
		s.EventuallyNextHops(t, vip, s.AllNodeAddrs())
	case suite.ModeExplicitClass:
		created := s.LBService(t, ns, "noclass", "noclass", suite.WithClass(nil))
		if created.Spec.LoadBalancerClass != nil {
			t.Fatalf("the API server defaulted loadBalancerClass to %q; the case needs a nil class", *created.Spec.LoadBalancerClass)
		}
		// A Service of our class created next to it gets its IP: we are running and
		// looking, so the nil-class Service's silence is a decision, not an outage.
		s.LBService(t, ns, "ours", "noclass")
		ours := s.WaitIngress(t, ns, "ours")
		s.EventuallyNextHops(t, ours, s.AllNodeAddrs())
		suite.Consistently(t, s.Timeouts.Consistently, "nil-class service untouched", func() error {
			svc, err := s.Kube.CoreV1().Services(ns).Get(ctx, "noclass", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if svc.ResourceVersion != created.ResourceVersion {
				return fmt.Errorf("service was written: resourceVersion %s → %s, status %+v, finalizers %v",
					created.ResourceVersion, svc.ResourceVersion, svc.Status, svc.Finalizers)
			}
			evs, err := s.Kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			for _, e := range evs.Items {
				src := e.Source.Component + " " + e.ReportingController
				if e.InvolvedObject.Kind == "Service" && e.InvolvedObject.Name == "noclass" && strings.Contains(src, "bgplb") {
					return fmt.Errorf("event from %s on the nil-class service: %s %s", src, e.Reason, e.Message)
				}
			}
			return nil
		})
	default:
		t.Fatalf("unknown mode %q", s.Mode)
	}
}
