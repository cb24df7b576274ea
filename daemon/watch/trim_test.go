package watch

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/daemon/eligibility"
)

// TestTrimSliceKeepsSelection: for random EndpointSlices (endpoints on this node and
// others, every combination of conditions, missing and bad addresses, duplicates across
// slices) the eligibility decision computed from the trimmed slices equals the one from
// the originals, for both traffic policies, and the trimmed slices keep no more than two
// endpoints of other nodes each.
func TestTrimSliceKeepsSelection(t *testing.T) {
	const node = "node1"
	nodes := []*string{ptr.To("node1"), ptr.To("node2"), ptr.To("node3"), nil}
	conds := []*bool{nil, ptr.To(true), ptr.To(false)}
	rng := rand.New(rand.NewPCG(1, 2))
	trim := trimSlice(node, newVocabulary())
	registered := func(_, name string, _ netip.Addr) bool { return name != "unregistered" }
	for iter := 0; iter < 3000; iter++ {
		var orig, trimmed []*discoveryv1.EndpointSlice
		// The same address in two slices is the same endpoint: same conditions.
		condsOf := map[string]discoveryv1.EndpointConditions{}
		for sl := 0; sl < 1+rng.IntN(2); sl++ {
			s := &discoveryv1.EndpointSlice{
				ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: fmt.Sprintf("svc-%d", sl), GenerateName: "svc-",
					Annotations:     map[string]string{"a": "b"},
					OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: "svc", UID: "u"}}},
				AddressType: discoveryv1.AddressTypeIPv4,
				Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080)}},
			}
			for e := 0; e < rng.IntN(8); e++ {
				// An address lives on one node (duplicates across slices are the same
				// endpoint, as in a slice split or move).
				n := rng.IntN(len(nodes))
				ep := discoveryv1.Endpoint{
					Addresses: []string{fmt.Sprintf("198.19.%d.%d", n, 1+rng.IntN(6))},
					NodeName:  nodes[n],
					Conditions: discoveryv1.EndpointConditions{Ready: conds[rng.IntN(3)], Serving: conds[rng.IntN(3)],
						Terminating: conds[rng.IntN(3)]},
					TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: fmt.Sprintf("pod-%d", e), UID: "u"},
				}
				if c, ok := condsOf[ep.Addresses[0]]; ok {
					ep.Conditions = c
				} else {
					condsOf[ep.Addresses[0]] = ep.Conditions
				}
				switch rng.IntN(12) {
				case 0:
					ep.Addresses = nil
				case 1:
					ep.Addresses = []string{"not-an-ip"}
				case 2:
					ep.TargetRef.Name = "unregistered"
				}
				s.Endpoints = append(s.Endpoints, ep)
			}
			orig = append(orig, s)
			out, err := trim(s.DeepCopy())
			if err != nil {
				t.Fatal(err)
			}
			ts := out.(*discoveryv1.EndpointSlice)
			if ts.Annotations != nil || ts.OwnerReferences != nil || ts.GenerateName != "" {
				t.Fatalf("annotations, ownerReferences or generateName kept: %+v", ts.ObjectMeta)
			}
			elsewhere := 0
			for _, ep := range ts.Endpoints {
				if ep.NodeName == nil || *ep.NodeName != node {
					elsewhere++
				}
			}
			if elsewhere > 2 {
				t.Fatalf("iteration %d: %d endpoints of other nodes kept: %+v", iter, elsewhere, ts.Endpoints)
			}
			trimmed = append(trimmed, ts)
		}
		for _, policy := range []corev1.ServiceExternalTrafficPolicy{corev1.ServiceExternalTrafficPolicyLocal, corev1.ServiceExternalTrafficPolicyCluster} {
			for _, reg := range []eligibility.RegisteredFunc{nil, registered} {
				want := eligibility.SelectEndpoints(policy, node, orig, reg)
				got := eligibility.SelectEndpoints(policy, node, trimmed, reg)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("iteration %d, %s, registered %v:\n got %+v\nwant %+v\nslices %+v", iter, policy, reg != nil, got, want, orig)
				}
			}
		}
	}
}
