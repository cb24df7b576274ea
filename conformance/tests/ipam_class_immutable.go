package tests

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/conformance/suite"
)

// B4 (IPAMClassImmutableTransfer): changing the class of a LoadBalancer Service is rejected
// by the API server; LB → ClusterIP → LB of a foreign class releases our IP, withdraws it
// and is not written to by us.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "IPAMClassImmutableTransfer",
		ID:        "B4",
		Description: "changing the class of a LoadBalancer Service is rejected by the API server; LB → ClusterIP → " +
			"LB of a foreign class releases our IP, withdraws it and is not written to by us",
		Profile:  "LB-IPAM",
		Features: []suite.Feature{suite.FeatureClassSelection, suite.FeatureIPRelease},
		Test:     testIPAMClassImmutable,
	})
}

func testIPAMClassImmutable(t *testing.T, s *suite.Suite) {
	ns := s.Namespace(t, "conf-ipam-class")
	foreign := "example.com/internal-vip"
	vip := backedService(t, s, ns, "web", "web")

	t.Log("change the class in place: rejected")
	svc := s.Service(t, ns, "web")
	svc.Spec.LoadBalancerClass = ptr.To(foreign)
	_, err := s.Kube.CoreV1().Services(ns).Update(ctxBG, svc, metav1.UpdateOptions{})
	switch {
	case err == nil:
		t.Fatalf("the API server accepted a loadBalancerClass change on a LoadBalancer Service")
	case !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "loadBalancerClass"):
		t.Fatalf("class change failed, but not as an Invalid error naming loadBalancerClass: %v", err)
	}
	t.Logf("rejected: %v", err)
	if err := sameIngress(s, ns, "web", vip); err != nil {
		t.Fatal(err)
	}

	t.Log("LB → ClusterIP: released and withdrawn")
	s.UpdateService(t, ns, "web", suite.ToType(corev1.ServiceTypeClusterIP))
	s.WaitIngressIs(t, ns, "web")
	s.EventuallyNextHops(t, vip, nil)

	t.Log("ClusterIP → LB of a foreign class: not ours, never written, not announced")
	s.UpdateService(t, ns, "web", func(svc *corev1.Service) {
		svc.Spec.Type = corev1.ServiceTypeLoadBalancer
		svc.Spec.LoadBalancerClass = ptr.To(foreign)
		svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	})
	rv := s.Service(t, ns, "web").ResourceVersion
	suite.Consistently(t, s.Timeouts.Consistently, "foreign-class Service untouched and not announced", func() error {
		cur, err := s.Kube.CoreV1().Services(ns).Get(ctxBG, "web", getOpts)
		if err != nil {
			return err
		}
		if cur.ResourceVersion != rv {
			return fmt.Errorf("written after becoming foreign: status %+v", cur.Status)
		}
		nh, err := s.RIBNextHops(vip)
		if err != nil {
			return err
		}
		if len(nh) != 0 {
			return fmt.Errorf("router still has %s via %v", vip, nh)
		}
		return nil
	})
}
