package announce

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/eligibility"
	"github.com/bgplb/bgplb/daemon/eligibility/endpoints"
	"github.com/bgplb/bgplb/daemon/servicespec"
)

// nodeEval evaluates like the TrafficPolicy plugin for one named node.
type nodeEval string

func (n nodeEval) Evaluate(_ context.Context, in *eligibility.Input) (eligibility.Decision, error) {
	sel := eligibility.SelectEndpoints(in.Service.Spec.ExternalTrafficPolicy, string(n), in.Slices, nil)
	d := eligibility.Decision{InScope: true, Announce: sel.Announce, Weight: int64(len(sel.NewFlow))}
	if !sel.Announce {
		d.Reason, d.Message = "NoEligibleEndpoints", "no local endpoint"
	}
	return d, nil
}

// TestPlanService: one call plans every node — eligibility per node (ETP=Local), the
// advertisement's nodeSelector, the peers each node has (peerSelector) and whether a
// peer the node's path goes to is established.
func TestPlanService(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec:   corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "203.0.113.10"}}}}}
	ep := func(ip, node string) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: []string{ip}, NodeName: ptr.To(node), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}
	}
	in := PlanInput{
		Service: svc,
		Slices: endpoints.FromEndpointSlices(&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-1"},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{ep("198.19.1.5", "node1"), ep("198.19.2.5", "node2"), ep("198.19.4.5", "node4")}}),
		Pools: []*v1alpha1.LoadBalancerIPPool{{ObjectMeta: metav1.ObjectMeta{Name: "p"},
			Spec: v1alpha1.LoadBalancerIPPoolSpec{Blocks: []v1alpha1.IPBlock{{CIDR: "203.0.113.0/24"}}}}},
		Advertisements: []*v1alpha1.BGPAdvertisement{{ObjectMeta: metav1.ObjectMeta{Name: "racks"},
			Spec: v1alpha1.BGPAdvertisementSpec{
				NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"bgp": "on"}},
				PeerSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"role": "tor"}},
			}}},
	}
	tor := func(up bool) PlanPeer {
		return PlanPeer{Name: "tor", Address: netip.MustParseAddr("198.18.0.1"), Labels: map[string]string{"role": "tor"}, Established: up}
	}
	rr := PlanPeer{Name: "rr", Address: netip.MustParseAddr("198.18.0.2"), Labels: map[string]string{"role": "rr"}, Established: true}
	node := func(name string, bgpOn bool, peers ...PlanPeer) PlanNode {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
		if bgpOn {
			n.Labels["bgp"] = "on"
		}
		return PlanNode{Name: name, Node: n, Eval: nodeEval(name), Peers: peers}
	}
	plans, err := PlanService(context.Background(), in, []PlanNode{
		node("node1", true, tor(true), rr), // announces to the tor, established
		node("node2", true, tor(false)),    // would announce, session down
		node("node3", true, tor(true)),     // no local endpoint
		node("node4", false, tor(true)),    // not selected by the advertisement
		node("node5", true, rr),            // no local endpoint either: eligibility decides before peers
	})
	must(t, err)
	want := []struct {
		reason      string
		established bool
	}{
		{v1alpha1.ReasonAnnounced, true},
		{v1alpha1.ReasonAnnounced, false},
		{v1alpha1.ReasonNoEligibleEndpoints, false},
		{v1alpha1.ReasonNoMatchingAdvertisement, false},
		{v1alpha1.ReasonNoEligibleEndpoints, false},
	}
	for i, p := range plans {
		if p.State.Reason != want[i].reason || p.Established != want[i].established {
			t.Errorf("%s: reason %s (%s), established %v; want %s, %v", p.Node, p.State.Reason, p.State.Message, p.Established, want[i].reason, want[i].established)
		}
	}
	if got := plans[0].paths; len(got) != 1 || len(got[0].PeerAttributes) != 1 {
		t.Errorf("node1 paths %+v, want one path for the tor only", got)
	} else if _, ok := got[0].For(netip.MustParseAddr("198.18.0.1")); !ok {
		t.Errorf("node1's path does not go to the tor: %+v", got[0])
	}
}

// TestPlanTooManyFrontends: a Service whose VIPs × ports exceed servicespec.MaxFrontends
// is neither programmed nor announced, with reason TooManyFrontends.
func TestPlanTooManyFrontends(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "wide"},
		Spec:   corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "203.0.113.10"}}}}}
	for i := 0; i < servicespec.MaxFrontends+1; i++ {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: fmt.Sprint("p", i), Port: int32(1000 + i), Protocol: corev1.ProtocolTCP})
	}
	in := PlanInput{Service: svc,
		Slices: endpoints.FromEndpointSlices(&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "wide-1"},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"198.19.1.5"}, NodeName: ptr.To("node1"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}}}),
		Pools: []*v1alpha1.LoadBalancerIPPool{{ObjectMeta: metav1.ObjectMeta{Name: "p"},
			Spec: v1alpha1.LoadBalancerIPPoolSpec{Blocks: []v1alpha1.IPBlock{{CIDR: "203.0.113.0/24"}}}}},
		Advertisements: []*v1alpha1.BGPAdvertisement{{ObjectMeta: metav1.ObjectMeta{Name: "all"}}},
	}
	node := PlanNode{Name: "node1", Node: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"}}, Eval: nodeEval("node1"),
		Peers: []PlanPeer{{Name: "tor", Address: netip.MustParseAddr("198.18.0.1"), Established: true}}}
	plans, err := PlanService(context.Background(), in, []PlanNode{node})
	must(t, err)
	if p := plans[0]; p.State.Reason != v1alpha1.ReasonTooManyFrontends || len(p.VIPs) != 0 || len(p.paths) != 0 ||
		!strings.Contains(p.State.Message, "257 datapath frontends") {
		t.Fatalf("plan = reason %s (%s), VIPs %v, %d paths", p.State.Reason, p.State.Message, p.VIPs, len(p.paths))
	}
	// One port fewer fits and is announced.
	in.Service.Spec.Ports = in.Service.Spec.Ports[:servicespec.MaxFrontends]
	plans, err = PlanService(context.Background(), in, []PlanNode{node})
	must(t, err)
	if p := plans[0]; p.State.Reason != v1alpha1.ReasonAnnounced {
		t.Fatalf("at the cap: reason %s (%s)", p.State.Reason, p.State.Message)
	}
}
