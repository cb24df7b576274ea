package watch

import (
	"reflect"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// TestTrimObjectIsFaithful: the informers' transform drops managedFields and foreign
// annotations and leaves everything else as the API server sent it (other nodes'
// endpoints, labels, owner references).
func TestTrimObjectIsFaithful(t *testing.T) {
	orig := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "web", Name: "s1",
			Labels:          map[string]string{discoveryv1.LabelServiceName: "a", "app": "x"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: "a", UID: "u1"}},
			Annotations: map[string]string{
				"bgplb.io/pool": "p", "service.beta.kubernetes.io/load-balancer-source-ranges": "198.51.100.0/24",
				"kubectl.kubernetes.io/last-applied-configuration":  "{...}",
				"service.beta.kubernetes.io/aws-load-balancer-type": "nlb",
			},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager"}},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"198.18.1.1"}, NodeName: ptr.To("node1"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
			{Addresses: []string{"198.18.2.1"}, NodeName: ptr.To("node2"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}},
			{Addresses: []string{"198.18.2.2"}, NodeName: ptr.To("node2"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}},
		},
	}
	want := orig.DeepCopy()
	want.ManagedFields = nil
	delete(want.Annotations, "kubectl.kubernetes.io/last-applied-configuration")
	delete(want.Annotations, "service.beta.kubernetes.io/aws-load-balancer-type")
	got, err := TrimObject(orig.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("TrimObject = %+v\nwant %+v", got, want)
	}
}
