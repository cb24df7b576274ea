package tests

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/conformance/suite"
	lbv1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// D-source-ranges (DatapathSourceRanges): the legacy annotation
// service.beta.kubernetes.io/load-balancer-source-ranges restricts the VIP (the allowed
// client connects, the other does not); spec.loadBalancerSourceRanges wins over it; an
// entry bgplb cannot parse (010.0.0.0/8) blocks every client, with SourceRangesValid=False
// and an event.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "DatapathSourceRanges",
		ID:        "D-source-ranges",
		Description: "the legacy annotation service.beta.kubernetes.io/load-balancer-source-ranges restricts the VIP " +
			"(the allowed client connects, the other does not); spec.loadBalancerSourceRanges wins over it; an " +
			"entry bgplb cannot parse (010.0.0.0/8) blocks every client, with SourceRangesValid=False and an event",
		Needs:    []suite.Adapter{suite.AdapterSubnetClient},
		Profile:  "LB-DATAPATH",
		Features: []suite.Feature{suite.FeatureTCPViaVIP},
		Test:     testSourceRanges,
	})
}

func testSourceRanges(t *testing.T, s *suite.Suite) {
	if s.SubnetClient == nil {
		t.Skip("this environment has no second client (Suite.SubnetClient)")
	}
	ctx := context.Background()
	ns := s.Namespace(t, "conf-source-ranges")
	d := s.Backend(t, ns, "sr", s.Nodes[0].Name, 1)
	client, other := s.Client, s.SubnetClient
	host := func(a netip.Addr) string { return netip.PrefixFrom(a, a.BitLen()).String() }
	s.LBService(t, ns, "sr", "sr", suite.WithLocal, suite.WithAnnotations(map[string]string{
		corev1.AnnotationLoadBalancerSourceRangesKey: " " + host(client.Address()) + " ",
	}))
	vip := s.WaitIngress(t, ns, "sr")
	s.WaitPods(t, ns, d, 1)
	s.EventuallyNextHops(t, vip, s.NodeAddrs(s.Nodes[0].Name))

	get := func(c suite.Client) error {
		_, err := suite.HTTPGetFrom(ctx, c, s.Timeouts.Request, vip, 80, "/hostname")
		return err
	}
	// allowed: c answers, and keeps answering while blocked does not.
	expect := func(what string, allowed, blocked []suite.Client) {
		t.Helper()
		suite.Eventually(t, s.Timeouts.Converge, what, func() error {
			for _, c := range allowed {
				if err := get(c); err != nil {
					return fmt.Errorf("%s should connect: %w", c.Address(), err)
				}
			}
			for _, c := range blocked {
				if get(c) == nil {
					return fmt.Errorf("%s connected, but should be blocked", c.Address())
				}
			}
			return nil
		})
		t.Logf("%s: ok", what)
	}
	expect("annotation allows only "+client.Address().String(), []suite.Client{client}, []suite.Client{other})

	// The field wins over the annotation (Kubernetes' rule).
	s.UpdateService(t, ns, "sr", func(svc *corev1.Service) {
		svc.Spec.LoadBalancerSourceRanges = []string{host(other.Address())}
	})
	expect("field allows only "+other.Address().String(), []suite.Client{other}, []suite.Client{client})

	// An entry bgplb cannot parse: fail closed. API servers before 1.36 (or with
	// StrictIPCIDRValidation off, as in the lab) accept "010.0.0.0/8".
	svc := s.Service(t, ns, "sr")
	svc.Spec.LoadBalancerSourceRanges = []string{host(client.Address()), host(other.Address()), "010.0.0.0/8"}
	if _, err := s.Kube.CoreV1().Services(ns).Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsInvalid(err) {
			t.Fatalf("the API server refuses 010.0.0.0/8 (StrictIPCIDRValidation on): this case needs an API server that accepts it: %v", err)
		}
		t.Fatal(err)
	}
	expect("an unparsable entry blocks every client", nil, []suite.Client{client, other})
	suite.Eventually(t, s.Timeouts.Converge, "SourceRangesValid=False/InvalidSourceRanges", func() error {
		c := meta.FindStatusCondition(s.Service(t, ns, "sr").Status.Conditions, lbv1.ConditionSourceRangesValid)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != lbv1.ReasonInvalidSourceRanges {
			return fmt.Errorf("condition %+v", c)
		}
		t.Logf("condition: %s", c.Message)
		return nil
	})
	s.WaitServiceEvent(t, ns, "sr", lbv1.ReasonInvalidSourceRanges)

	s.UpdateService(t, ns, "sr", func(svc *corev1.Service) {
		svc.Spec.LoadBalancerSourceRanges = []string{host(client.Address())}
	})
	expect("fixed: "+client.Address().String()+" connects again", []suite.Client{client}, []suite.Client{other})
}
