package tests

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/conformance/suite"
)

// B2 (ClassForeignUntouched): a Service of another loadBalancerClass gets no IP, no write
// and no event from us; a status another controller sets is neither announced nor
// overwritten.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "ClassForeignUntouched",
		ID:        "B2",
		Description: "a Service of another loadBalancerClass gets no IP, no write and no event from us; " +
			"a status another controller sets is neither announced nor overwritten",
		Profile:  "LB-BGP",
		Features: []suite.Feature{suite.FeatureClassSelection},
		Test:     testClassForeign,
	})
}

func testClassForeign(t *testing.T, s *suite.Suite) {
	ctx := context.Background()
	ns := s.Namespace(t, "conf-foreign-class")
	d := s.Backend(t, ns, "other", s.NodeName(1), 1)
	s.WaitPods(t, ns, d, 1)
	created := s.LBService(t, ns, "other", "other", suite.WithClass(ptr.To("example.com/internal-vip")))

	noWrites := func() error {
		svc, err := s.Kube.CoreV1().Services(ns).Get(ctx, "other", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if svc.ResourceVersion != created.ResourceVersion {
			return fmt.Errorf("service was written: resourceVersion %s → %s, status %+v, finalizers %v",
				created.ResourceVersion, svc.ResourceVersion, svc.Status, svc.Finalizers)
		}
		return noEventsFromUs(ctx, s, ns)
	}
	suite.Consistently(t, s.Timeouts.Consistently, "foreign-class service untouched", noWrites)

	// Another controller publishes a VIP inside our range: we must not announce it
	// nor overwrite it.
	foreign := s.VIPRange.Addr()
	for i := 0; i < 250; i++ {
		foreign = foreign.Next()
	}
	svc, err := s.Kube.CoreV1().Services(ns).Get(ctx, "other", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: foreign.String()}}
	patched, err := s.Kube.CoreV1().Services(ns).UpdateStatus(ctx, svc, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("set foreign status: %v", err)
	}
	suite.Consistently(t, s.Timeouts.Consistently, "foreign VIP not announced and status kept", func() error {
		nh, err := s.RIBNextHops(foreign)
		if err != nil {
			return err
		}
		if len(nh) != 0 {
			return fmt.Errorf("router has %s via %v", foreign, nh)
		}
		cur, err := s.Kube.CoreV1().Services(ns).Get(ctx, "other", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.ResourceVersion != patched.ResourceVersion {
			return fmt.Errorf("service rewritten after the foreign status: %+v", cur.Status)
		}
		return noEventsFromUs(ctx, s, ns)
	})
}

// noEventsFromUs fails when any event in ns was reported by a bgplb component.
func noEventsFromUs(ctx context.Context, s *suite.Suite, ns string) error {
	evs, err := s.Kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, e := range evs.Items {
		src := e.Source.Component + " " + e.ReportingController
		if e.InvolvedObject.Kind == "Service" && strings.Contains(src, "bgplb") {
			return fmt.Errorf("event from %s on %s: %s %s", src, e.InvolvedObject.Name, e.Reason, e.Message)
		}
	}
	return nil
}
