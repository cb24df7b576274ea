package watch

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// fresh returns a copy of s in its own allocation, as the API decoder makes them.
func fresh(s string) string { return strings.Clone(s) }

func sameStr(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }

// TestVocabularyStr: a string is shared from its second sighting on; strings seen once
// are not admitted; the vocabulary stops growing at maxVocabulary and the candidates are
// forgotten when maxCandidates is reached.
func TestVocabularyStr(t *testing.T) {
	v := newVocabulary()
	a1, a2, a3 := fresh("TCP"), fresh("TCP"), fresh("TCP")
	if got := v.str(a1); got != "TCP" || !sameStr(got, a1) {
		t.Fatalf("first sighting: got %q (own string %v)", got, sameStr(got, a1))
	}
	s2 := v.str(a2)
	s3 := v.str(a3)
	if s2 != "TCP" || !sameStr(s2, s3) || sameStr(s3, a3) {
		t.Fatalf("second and third sighting not shared: %q %q", s2, s3)
	}
	if long := strings.Repeat("x", maxVocabString+1); v.str(long) != long || v.str(fresh(long)) != long || len(v.strs) != 1 {
		t.Fatalf("a string longer than %d was admitted", maxVocabString)
	}
	for i := range maxCandidates + 10 {
		v.str(fmt.Sprintf("unique-%d", i))
	}
	if len(v.strs) != 1 || len(v.seen) > maxCandidates {
		t.Fatalf("unique strings: %d admitted, %d candidates; want 1 and ≤ %d", len(v.strs), len(v.seen), maxCandidates)
	}
	for i := range maxVocabulary + 10 {
		s := fmt.Sprintf("word-%d", i)
		v.str(s)
		if got := v.str(fresh(s)); got != s {
			t.Fatalf("%s: got %q", s, got)
		}
	}
	if len(v.strs) != maxVocabulary {
		t.Fatalf("%d strings admitted, want the bound %d", len(v.strs), maxVocabulary)
	}
	if got := v.str(fresh("TCP")); !sameStr(got, s2) {
		t.Error("an admitted string is no longer shared once the vocabulary is full")
	}
}

// TestSharedPtr: equal values share one pointer, values of different types never do,
// the caller's pointer is not kept, and the table is bounded.
func TestSharedPtr(t *testing.T) {
	v := newVocabulary()
	if sharedPtr[string](v, nil) != nil {
		t.Fatal("nil: want nil")
	}
	tcp := ptr.To(corev1.ProtocolTCP)
	p1 := sharedPtr(v, tcp)
	p2 := sharedPtr(v, ptr.To(corev1.ProtocolTCP))
	if p1 != p2 || *p1 != corev1.ProtocolTCP || p1 == tcp {
		t.Fatalf("protocol: %p %p (caller's %p)", p1, p2, tcp)
	}
	if s := sharedPtr(v, ptr.To("TCP")); *s != "TCP" || unsafe.Pointer(s) == unsafe.Pointer(p1) {
		t.Fatal("a *string shares the *Protocol of the same text")
	}
	if a, b := sharedPtr(v, ptr.To[int32](80)), sharedPtr(v, ptr.To[int32](8080)); *a != 80 || *b != 8080 || a == sharedPtr(v, ptr.To[int32](8080)) {
		t.Fatal("int32 pointers mixed up")
	}
	for i := range maxSharedPtrs + 10 {
		p := ptr.To(int32(10000 + i))
		if got := sharedPtr(v, p); *got != *p {
			t.Fatalf("%d: got %d", *p, *got)
		}
	}
	if len(v.ptrs) != maxSharedPtrs {
		t.Fatalf("%d pointers kept, want the bound %d", len(v.ptrs), maxSharedPtrs)
	}
}

// TestTrimSharesStrings: two Services and two EndpointSlices decoded separately keep
// their content through the transforms, and end up sharing their repeated strings and
// pointers, but not the EndpointSlices' unique service-name values.
func TestTrimSharesStrings(t *testing.T) {
	v := newVocabulary()
	trimSvc, trimSl := trimService(newAnnotationInterner(), v), trimSlice("node1", v)
	svc := func(name, ip string) *corev1.Service {
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: fresh("web"), Name: name, Labels: map[string]string{fresh("app"): fresh("shop")}},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceType(fresh("LoadBalancer")), ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicy(fresh("Local")),
				LoadBalancerClass: ptr.To(fresh("bgplb.io/bgp")), IPFamilies: []corev1.IPFamily{corev1.IPFamily(fresh("IPv4"))},
				IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicy(fresh("SingleStack"))), Selector: map[string]string{fresh("app"): fresh("shop")},
				ClusterIP: fresh("198.18.200.1"), ClusterIPs: []string{fresh("198.18.200.1")},
				Ports: []corev1.ServicePort{{Name: fresh("http"), Protocol: corev1.Protocol(fresh("TCP")), Port: 80, TargetPort: intstr.FromString(fresh("web"))}}},
			Status: corev1.ServiceStatus{
				LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: ip, IPMode: ptr.To(corev1.LoadBalancerIPMode(fresh("VIP")))}}},
				Conditions: []metav1.Condition{{Type: fresh("bgplb.io/Announced"), Status: metav1.ConditionStatus(fresh("True")), Reason: fresh("Announced"),
					Message: fresh("announced by 2 node(s) (node1, node2)")}}},
		}
	}
	var got []*corev1.Service
	for i, ip := range []string{"198.18.64.1", "198.18.64.2", "198.18.64.3"} {
		in := svc(fmt.Sprintf("s%d", i), ip)
		want := in.DeepCopy()
		out, err := trimSvc(in)
		if err != nil {
			t.Fatal(err)
		}
		s := out.(*corev1.Service)
		if !reflect.DeepEqual(want, s) {
			t.Fatalf("service %d changed by the transform:\n%#v\nwant\n%#v", i, s, want)
		}
		got = append(got, s)
	}
	b, c := got[1], got[2] // the first sighting is not shared; from the second on they are
	for name, pair := range map[string][2]string{
		"namespace":    {b.Namespace, c.Namespace},
		"type":         {string(b.Spec.Type), string(c.Spec.Type)},
		"policy":       {string(b.Spec.ExternalTrafficPolicy), string(c.Spec.ExternalTrafficPolicy)},
		"family":       {string(b.Spec.IPFamilies[0]), string(c.Spec.IPFamilies[0])},
		"port name":    {b.Spec.Ports[0].Name, c.Spec.Ports[0].Name},
		"protocol":     {string(b.Spec.Ports[0].Protocol), string(c.Spec.Ports[0].Protocol)},
		"target port":  {b.Spec.Ports[0].TargetPort.StrVal, c.Spec.Ports[0].TargetPort.StrVal},
		"label value":  {b.Labels["app"], c.Labels["app"]},
		"selector":     {b.Spec.Selector["app"], c.Spec.Selector["app"]},
		"condition":    {b.Status.Conditions[0].Type, c.Status.Conditions[0].Type},
		"message":      {b.Status.Conditions[0].Message, c.Status.Conditions[0].Message},
		"cluster IP":   {b.Spec.ClusterIP, b.Spec.ClusterIPs[0]},
		"ingress IPs ": {b.Status.LoadBalancer.Ingress[0].IP, c.Status.LoadBalancer.Ingress[0].IP},
	} {
		if shared := sameStr(pair[0], pair[1]); shared != (name != "ingress IPs ") {
			t.Errorf("%s: shared %v", name, shared)
		}
	}
	if b.Spec.LoadBalancerClass != c.Spec.LoadBalancerClass || b.Spec.IPFamilyPolicy != c.Spec.IPFamilyPolicy ||
		b.Status.LoadBalancer.Ingress[0].IPMode != c.Status.LoadBalancer.Ingress[0].IPMode {
		t.Error("enum pointers not shared")
	}

	sl := func(svcName string) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: fresh("web"), Name: svcName + "-abc",
				Labels: map[string]string{fresh(discoveryv1.LabelServiceName): fresh(svcName), fresh(discoveryv1.LabelManagedBy): fresh("endpointslice-controller.k8s.io")}},
			AddressType: discoveryv1.AddressType(fresh("IPv4")),
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(fresh("http")), Protocol: ptr.To(corev1.Protocol(fresh("TCP"))), Port: ptr.To[int32](8080)}},
			Endpoints: []discoveryv1.Endpoint{
				{Addresses: []string{"198.19.1.2"}, NodeName: ptr.To(fresh("node1")), Zone: ptr.To(fresh("a")),
					TargetRef: &corev1.ObjectReference{Kind: fresh("Pod"), Namespace: fresh("web"), Name: "p1"}},
				{Addresses: []string{"198.19.2.2"}, NodeName: ptr.To(fresh("node2")), Zone: ptr.To(fresh("b"))},
			},
		}
	}
	var slices []*discoveryv1.EndpointSlice
	for _, name := range []string{"orders", "orders", "payments"} { // an update, then another Service
		out, err := trimSl(sl(name))
		if err != nil {
			t.Fatal(err)
		}
		slices = append(slices, out.(*discoveryv1.EndpointSlice))
	}
	x, y := slices[1], slices[2]
	if !sameStr(x.Namespace, y.Namespace) || x.Ports[0].Name != y.Ports[0].Name || x.Ports[0].Port != y.Ports[0].Port ||
		x.Ports[0].Protocol != y.Ports[0].Protocol || !sameStr(string(x.AddressType), string(y.AddressType)) ||
		x.Endpoints[1].NodeName != y.Endpoints[1].NodeName || x.Endpoints[0].Zone != y.Endpoints[0].Zone ||
		!sameStr(x.Endpoints[0].TargetRef.Kind, y.Endpoints[0].TargetRef.Kind) {
		t.Error("repeated EndpointSlice strings or pointers not shared")
	}
	kx, _ := sliceServiceKey(x)
	ky, _ := sliceServiceKey(y)
	if kx != "web/orders" || ky != "web/payments" || *x.Ports[0].Port != 8080 || *y.Endpoints[1].NodeName != "node2" {
		t.Errorf("content changed: %s %s %+v", kx, ky, y)
	}
	if _, ok := v.strs["orders"]; ok {
		t.Error("a Service name (unique per Service) was admitted")
	}
}

// TestTrimSliceServiceName: the cached slice keeps no labels and no owner references of
// its own; its Service is still found (through the reference the transform made), and
// an untrimmed slice is found by its label; a slice without the label belongs to none,
// whatever its owner references.
func TestTrimSliceServiceName(t *testing.T) {
	trim := trimSlice("node1", newVocabulary())
	mk := func(labels map[string]string, refs ...metav1.OwnerReference) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "orders-x1", Labels: labels, OwnerReferences: refs}}
	}
	owner := metav1.OwnerReference{APIVersion: "v1", Kind: "Service", Name: "orders", UID: "3f1c", Controller: ptr.To(true)}
	labeled := mk(map[string]string{discoveryv1.LabelServiceName: "orders", discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io", "app": "orders"}, owner)
	if k, ok := sliceServiceKey(labeled); !ok || k != "web/orders" {
		t.Errorf("untrimmed: key %q, %v", k, ok)
	}
	out, err := trim(labeled)
	if err != nil {
		t.Fatal(err)
	}
	s := out.(*discoveryv1.EndpointSlice)
	if s.Labels != nil || len(s.OwnerReferences) != 1 || s.OwnerReferences[0].UID != "" {
		t.Errorf("trimmed: labels %v, owner references %+v", s.Labels, s.OwnerReferences)
	}
	if k, ok := sliceServiceKey(s); !ok || k != "web/orders" {
		t.Errorf("trimmed: key %q, %v", k, ok)
	}
	// No service-name label: no Service, before and after the transform, even with a
	// Service owner.
	for _, sl := range []*discoveryv1.EndpointSlice{mk(nil, owner), mk(map[string]string{"app": "x"})} {
		if k, ok := sliceServiceKey(sl); ok {
			t.Errorf("unlabeled slice maps to %q", k)
		}
		out, _ := trim(sl)
		if k, ok := sliceServiceKey(out.(*discoveryv1.EndpointSlice)); ok {
			t.Errorf("trimmed unlabeled slice maps to %q", k)
		}
	}
}
