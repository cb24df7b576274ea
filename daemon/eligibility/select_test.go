package eligibility

import (
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/daemon/eligibility/endpoints"
)

const thisNode = "node1"

type conds struct{ ready, serving, terminating *bool }

func (c conds) String() string {
	f := func(b *bool) string {
		if b == nil {
			return "nil"
		}
		if *b {
			return "T"
		}
		return "F"
	}
	return fmt.Sprintf("(%s,%s,%s)", f(c.ready), f(c.serving), f(c.terminating))
}

func ep(ip, node, pod string, c conds) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{
		Addresses:  []string{ip},
		NodeName:   ptr.To(node),
		TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: pod},
		Conditions: discoveryv1.EndpointConditions{Ready: c.ready, Serving: c.serving, Terminating: c.terminating},
	}
}

func slice(name string, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: "svc"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   eps,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](8080)}},
	}
}

var (
	readyC       = conds{ptr.To(true), ptr.To(true), ptr.To(false)}
	termServingC = conds{ptr.To(false), ptr.To(true), ptr.To(true)}
	termGoneC    = conds{ptr.To(false), ptr.To(false), ptr.To(true)}
	unreadyC     = conds{ptr.To(false), ptr.To(false), ptr.To(false)}
	nilC         = conds{}
)

// TestSelectEndpointsTruthTable is docs/design.md decision 2/3 and docs/conformance.md C5: for each
// endpoint condition tuple on this node, with and without a ready endpoint on another
// node, under Local and Cluster: does this node announce, which local endpoint takes new
// flows, which keeps established flows.
func TestSelectEndpointsTruthTable(t *testing.T) {
	type want struct {
		announce bool
		newFlow  bool // the local endpoint takes new flows
		keep     bool // the local endpoint keeps established flows
	}
	type row struct {
		c              conds
		readyElsewhere bool
		local, cluster want
	}
	rows := []row{
		{readyC, true, want{true, true, true}, want{true, true, true}},
		{readyC, false, want{true, true, true}, want{true, true, true}},
		// terminating but serving: keeps flows and takes new ones (no ready local left),
		// but under Local only announces when no ready endpoint exists anywhere.
		{termServingC, true, want{false, true, true}, want{true, true, true}},
		{termServingC, false, want{true, true, true}, want{true, true, true}},
		// terminating, not serving: drains established flows only.
		{termGoneC, true, want{false, false, true}, want{true, false, true}},
		{termGoneC, false, want{false, false, true}, want{false, false, true}},
		// not ready, not terminating: nothing.
		{unreadyC, true, want{false, false, false}, want{true, false, false}},
		{unreadyC, false, want{false, false, false}, want{false, false, false}},
		// nil conditions: ready.
		{nilC, true, want{true, true, true}, want{true, true, true}},
		{nilC, false, want{true, true, true}, want{true, true, true}},
	}
	local := netip.MustParseAddr("198.19.1.10")
	for _, r := range rows {
		for _, policy := range []corev1.ServiceExternalTrafficPolicy{corev1.ServiceExternalTrafficPolicyLocal, corev1.ServiceExternalTrafficPolicyCluster} {
			name := fmt.Sprintf("%s/elsewhere=%t/%s", r.c, r.readyElsewhere, policy)
			t.Run(name, func(t *testing.T) {
				eps := []discoveryv1.Endpoint{ep(local.String(), thisNode, "pod-local", r.c)}
				if r.readyElsewhere {
					eps = append(eps, ep("198.19.2.10", "node2", "pod-remote", readyC))
				} else {
					// a non-ready endpoint elsewhere must not change anything
					eps = append(eps, ep("198.19.2.10", "node2", "pod-remote", unreadyC))
				}
				sel := SelectEndpoints(policy, thisNode, endpoints.FromEndpointSlices(slice("s1", eps...)), nil)
				w := r.local
				if policy == corev1.ServiceExternalTrafficPolicyCluster {
					w = r.cluster
				}
				if sel.Announce != w.announce {
					t.Errorf("Announce = %t, want %t (selection %+v)", sel.Announce, w.announce, sel)
				}
				if got := contains(sel.NewFlow, local); got != w.newFlow {
					t.Errorf("local endpoint in NewFlow = %t, want %t", got, w.newFlow)
				}
				if got := contains(sel.Keep, local); got != w.keep {
					t.Errorf("local endpoint in Keep = %t, want %t", got, w.keep)
				}
				for _, e := range append(sel.NewFlow, sel.Keep...) {
					if e.NodeName != thisNode {
						t.Errorf("remote endpoint %s selected for this node", e.IP)
					}
				}
			})
		}
	}
}

func contains(eps []Endpoint, ip netip.Addr) bool {
	for _, e := range eps {
		if e.IP == ip {
			return true
		}
	}
	return false
}

func TestSelectEndpointsReadyBeatsServingLocally(t *testing.T) {
	s := slice("s1",
		ep("198.19.1.10", thisNode, "a", readyC),
		ep("198.19.1.11", thisNode, "b", termServingC),
		ep("198.19.1.12", thisNode, "c", termGoneC),
	)
	sel := SelectEndpoints(corev1.ServiceExternalTrafficPolicyLocal, thisNode, endpoints.FromEndpointSlices(s), nil)
	if !sel.Announce {
		t.Fatalf("expected announce")
	}
	if len(sel.NewFlow) != 1 || sel.NewFlow[0].IP != netip.MustParseAddr("198.19.1.10") {
		t.Errorf("NewFlow = %+v, want only the ready endpoint", sel.NewFlow)
	}
	if len(sel.Keep) != 3 {
		t.Errorf("Keep = %+v, want all three", sel.Keep)
	}
	if sel.ReadyLocal != 1 || sel.ServingLocal != 2 {
		t.Errorf("ReadyLocal=%d ServingLocal=%d, want 1 and 2", sel.ReadyLocal, sel.ServingLocal)
	}
}

func TestSelectEndpointsRegistration(t *testing.T) {
	s := slice("s1",
		ep("198.19.1.10", thisNode, "registered", readyC),
		ep("198.19.1.11", thisNode, "unregistered", readyC),
	)
	isReg := func(ns, name string, ip netip.Addr) bool { return ns == "default" && name == "registered" }
	sel := SelectEndpoints(corev1.ServiceExternalTrafficPolicyLocal, thisNode, endpoints.FromEndpointSlices(s), isReg)
	if len(sel.NewFlow) != 1 || sel.NewFlow[0].PodName != "registered" || sel.UnregisteredLocal != 1 {
		t.Fatalf("selection %+v: want only the registered endpoint and 1 unregistered", sel)
	}

	none := func(string, string, netip.Addr) bool { return false }
	sel = SelectEndpoints(corev1.ServiceExternalTrafficPolicyLocal, thisNode, endpoints.FromEndpointSlices(s), none)
	if sel.Announce || sel.NewFlow != nil || sel.UnregisteredLocal != 2 {
		t.Fatalf("selection %+v: nothing registered must not announce", sel)
	}
	sel = SelectEndpoints(corev1.ServiceExternalTrafficPolicyCluster, thisNode, endpoints.FromEndpointSlices(s), none)
	if sel.Announce {
		t.Fatalf("Cluster with only unregistered local endpoints must not announce: %+v", sel)
	}
}

func TestSelectEndpointsDedupAndFamilies(t *testing.T) {
	a := slice("a", ep("198.19.1.10", thisNode, "p", readyC))
	b := slice("b", ep("198.19.1.10", thisNode, "p", readyC)) // same endpoint, transient duplicate
	v6 := slice("v6", ep("2001:db8:1:1::10", thisNode, "p", readyC))
	v6.AddressType = discoveryv1.AddressTypeIPv6
	fqdn := slice("f", ep("example.com", thisNode, "p", readyC))
	fqdn.AddressType = discoveryv1.AddressTypeFQDN
	sel := SelectEndpoints(corev1.ServiceExternalTrafficPolicyLocal, thisNode, endpoints.FromEndpointSlices(a, b, v6, fqdn, nil), nil)
	if len(sel.NewFlow) != 2 {
		t.Fatalf("NewFlow = %+v, want one v4 and one v6", sel.NewFlow)
	}
	if !sel.NewFlow[0].IP.Is4() || !sel.NewFlow[1].IP.Is6() {
		t.Errorf("order = %v, %v; want v4 then v6", sel.NewFlow[0].IP, sel.NewFlow[1].IP)
	}
	if p := sel.NewFlow[0].Ports; len(p) != 1 || p[0].Port != 8080 || p[0].Name != "http" || p[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("ports = %+v", p)
	}
}

func TestSelectEndpointsEmpty(t *testing.T) {
	for _, policy := range []corev1.ServiceExternalTrafficPolicy{"", corev1.ServiceExternalTrafficPolicyLocal, corev1.ServiceExternalTrafficPolicyCluster} {
		sel := SelectEndpoints(policy, thisNode, nil, nil)
		if sel.Announce || sel.NewFlow != nil || sel.Keep != nil {
			t.Errorf("policy %q, no slices: %+v, want nothing", policy, sel)
		}
	}
	// Cluster: remote ready endpoint only -> announce with no local endpoints.
	sel := SelectEndpoints(corev1.ServiceExternalTrafficPolicyCluster, thisNode, endpoints.FromEndpointSlices(slice("s", ep("198.19.2.10", "node2", "r", readyC))), nil)
	if !sel.Announce || sel.NewFlow != nil {
		t.Errorf("Cluster with remote endpoint: %+v, want announce and no local endpoints", sel)
	}
	sel = SelectEndpoints(corev1.ServiceExternalTrafficPolicyLocal, thisNode, endpoints.FromEndpointSlices(slice("s", ep("198.19.2.10", "node2", "r", readyC))), nil)
	if sel.Announce {
		t.Errorf("Local with remote endpoint only: announce, want not")
	}
}

// TestSelectEndpointsTrustBoundary: with a registry, an endpoint counts only when its
// targetRef names a Pod in the slice's (Service's) namespace. A forged endpoint pointing
// at another namespace's pod, or one without targetRef, is neither eligible here nor makes
// the Service eligible cluster-wide, even though the registry knows the address.
func TestSelectEndpointsTrustBoundary(t *testing.T) {
	registered := func(ns, name string, ip netip.Addr) bool {
		// The registry has the victim's pod at 198.19.1.5 in namespace "victim".
		return ns == "victim" && name == "db" && ip == netip.MustParseAddr("198.19.1.5")
	}
	forged := ep("198.19.1.5", thisNode, "db", readyC)
	forged.TargetRef.Namespace = "victim"
	noRef := ep("198.19.1.5", "node2", "", readyC)
	noRef.TargetRef = nil
	node := ep("198.19.1.5", "node2", "db", readyC)
	node.TargetRef = &corev1.ObjectReference{Kind: "Node", Name: "node2"}
	remoteForged := ep("198.19.1.6", "node2", "db", readyC)
	remoteForged.TargetRef.Namespace = "victim"
	for _, policy := range []corev1.ServiceExternalTrafficPolicy{corev1.ServiceExternalTrafficPolicyLocal, corev1.ServiceExternalTrafficPolicyCluster} {
		sel := SelectEndpoints(policy, thisNode, endpoints.FromEndpointSlices(slice("s", forged, noRef, node, remoteForged)), registered)
		if sel.Announce || len(sel.NewFlow) != 0 || len(sel.Keep) != 0 || sel.EligibleClusterWide || sel.ReadyElsewhere {
			t.Errorf("%s: forged endpoints counted: %+v", policy, sel)
		}
		if sel.UntrustedEndpoints != 4 {
			t.Errorf("%s: UntrustedEndpoints = %d, want 4", policy, sel.UntrustedEndpoints)
		}
	}
	// The same pod named from its own namespace (the slice's) counts.
	mine := ep("198.19.1.5", thisNode, "db", readyC)
	mine.TargetRef.Namespace = ""
	own := slice("s", mine)
	own.Namespace = "victim"
	if sel := SelectEndpoints(corev1.ServiceExternalTrafficPolicyLocal, thisNode, endpoints.FromEndpointSlices(own), registered); !sel.Announce || len(sel.NewFlow) != 1 {
		t.Errorf("own namespace: %+v", sel)
	}
}
