package tests

import (
	"context"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/conformance/suite"
)

// forgedQuiet is how long the forged Services must stay unannounced.
const forgedQuiet = 15 * time.Second

// Trust boundary (issue 17): an EndpointSlice written by hand in another namespace, whose
// endpoint points at a pod of the victim's namespace (by targetRef, or by address alone),
// gets no VIP traffic: the endpoint does not count (docs/design.md decision 2), so the
// forged Service's VIP is never announced, under Local or Cluster. The victim's own
// Service on the same pod is announced and answers (the pod is registered and
// reachable: the check is not vacuous).
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "DatapathForgedEndpointSlice",
		Description: "a hand-written EndpointSlice in another namespace pointing at a pod (targetRef to the " +
			"pod's namespace, or no targetRef) makes no node announce the forged Service's VIP, and the VIP does " +
			"not answer; the pod's own Service answers",
		Profile:  "LB-DATAPATH",
		Features: []suite.Feature{suite.FeatureTCPViaVIP, suite.FeatureETPLocal, suite.FeatureETPCluster},
		Test:     testDatapathForgedSlice,
	})
}

func testDatapathForgedSlice(t *testing.T, s *suite.Suite) {
	ctx := context.Background()
	victim := s.Namespace(t, "conf-forged-victim")
	d := s.Backend(t, victim, "db", "node1", 1)
	s.LBService(t, victim, "db", "db", suite.WithLocal)
	own := s.WaitIngress(t, victim, "db")
	pod := s.WaitPods(t, victim, d, 1)[0]
	s.EventuallyNextHops(t, own, s.NodeAddrs("node1"))
	suite.Eventually(t, s.Timeouts.Converge, "the victim's own VIP answers", func() error {
		_, err := s.HTTPGet(ctx, own, 80, "/hostname")
		return err
	})

	attacker := s.Namespace(t, "conf-forged-attacker")
	ref := &corev1.ObjectReference{Kind: "Pod", Namespace: victim, Name: pod.Name, UID: pod.UID}
	cases := []struct {
		name   string
		policy func(*corev1.Service)
		ref    *corev1.ObjectReference
	}{
		{"steal-ref-local", suite.WithLocal, ref},
		{"steal-ref-cluster", func(*corev1.Service) {}, ref},
		{"steal-noref-local", suite.WithLocal, nil},
		{"steal-noref-cluster", func(*corev1.Service) {}, nil},
	}
	for _, c := range cases {
		s.LBService(t, attacker, c.name, "", c.policy, func(svc *corev1.Service) { svc.Spec.Selector = nil })
		slice := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: c.name + "-forged", Namespace: attacker, Labels: map[string]string{
				discoveryv1.LabelServiceName: c.name,
				discoveryv1.LabelManagedBy:   "conformance.bgplb.io",
			}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{{
				Addresses:  []string{pod.Status.PodIP},
				NodeName:   ptr.To(pod.Spec.NodeName),
				TargetRef:  c.ref,
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true)},
			}},
			Ports: []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](8080)}},
		}
		if _, err := s.Kube.DiscoveryV1().EndpointSlices(attacker).Create(ctx, slice, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create forged endpointslice %s/%s: %v", attacker, slice.Name, err)
		}
	}
	vips := make([]netip.Addr, len(cases))
	for i, c := range cases {
		vips[i] = s.WaitIngress(t, attacker, c.name)
	}
	// The victim's Service is announced from node1 within T; the forged ones must not be
	// announced at all, so give them well over T to (wrongly) appear.
	for i, c := range cases {
		t.Logf("%s: %s", c.name, vips[i])
		s.ConsistentlyNextHops(t, vips[i], nil, forgedQuiet/time.Duration(len(cases)))
	}
	for i, c := range cases {
		if body, err := s.HTTPGet(ctx, vips[i], 80, "/hostname"); err == nil {
			t.Errorf("%s: forged VIP %s answered %q", c.name, vips[i], body)
		}
	}
	// The victim's Service still answers: the forged slices took nothing away.
	if _, err := s.HTTPGet(ctx, own, 80, "/hostname"); err != nil {
		t.Errorf("the victim's VIP %s stopped answering: %v", own, err)
	}
}
