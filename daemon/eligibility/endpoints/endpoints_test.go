package endpoints

import (
	"fmt"
	"net/netip"
	"reflect"
	"runtime"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// TestFromEndpointSliceKeepsWhatWasSent: the view holds the slice's fields as sent — unset
// conditions stay nil, an unparsable address stays in place as the zero Addr, a missing
// targetRef stays nil — and FQDN slices keep no endpoints.
func TestFromEndpointSliceKeepsWhatWasSent(t *testing.T) {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "a-1", ResourceVersion: "7",
			Labels: map[string]string{discoveryv1.LabelServiceName: "a", "x": "y"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](80)}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"198.19.1.1", "bogus"}, NodeName: ptr.To("node1"),
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Terminating: ptr.To(false)},
				TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "web", Name: "p1", UID: "u"}},
			{Addresses: []string{"bogus", "198.19.1.2"}},
		},
	}
	got := FromEndpointSlice(s)
	want := &Slice{Namespace: "web", Name: "a-1", ResourceVersion: "7", Service: "a", AddressType: discoveryv1.AddressTypeIPv4,
		Ports: s.Ports,
		Endpoints: []Endpoint{
			{Addresses: []netip.Addr{netip.MustParseAddr("198.19.1.1"), {}}, NodeName: "node1",
				Conditions: Conditions{Ready: True, Terminating: False},
				TargetRef:  &TargetRef{Kind: "Pod", Namespace: "web", Name: "p1"}},
			{Addresses: []netip.Addr{{}, netip.MustParseAddr("198.19.1.2")}},
		}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("FromEndpointSlice = %+v\nwant %+v", got, want)
	}
	fqdn := FromEndpointSlice(&discoveryv1.EndpointSlice{AddressType: discoveryv1.AddressTypeFQDN,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"a.example"}}}})
	if fqdn.Endpoints != nil {
		t.Fatalf("FQDN slice view keeps endpoints %v", fqdn.Endpoints)
	}
	if FromEndpointSlice(nil) != nil {
		t.Fatal("FromEndpointSlice(nil) != nil")
	}
}

// BenchmarkViewMemory reports the heap 10k EndpointSlices of 10 endpoints take as API
// objects (as the protobuf decoder leaves them: every string its own allocation) and as
// views. Run: go test -run '^$' -bench ViewMemory -benchtime 1x ./daemon/eligibility/endpoints
func BenchmarkViewMemory(b *testing.B) {
	const slices, per = 10000, 10
	for range b.N {
		base := liveHeap()
		objs := make([]*discoveryv1.EndpointSlice, 0, slices)
		for i := range slices {
			objs = append(objs, testSlice(i, per))
		}
		api := liveHeap() - base
		views := make([]*Slice, 0, slices)
		for _, s := range objs {
			views = append(views, FromEndpointSlice(s))
		}
		objs = nil
		view := liveHeap() - base
		b.ReportMetric(float64(api)/(1<<20), "MiB-api")
		b.ReportMetric(float64(view)/(1<<20), "MiB-view")
		runtime.KeepAlive(objs)
		runtime.KeepAlive(views)
	}
}

// liveHeap returns the heap in use right after a garbage collection.
func liveHeap() int64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// testSlice is shaped like the scale benchmark's slices, with fresh strings everywhere
// (as decoded from the wire).
func testSlice(i, per int) *discoveryv1.EndpointSlice {
	str := func(f string, a ...any) string { return fmt.Sprintf(f, a...) }
	name := str("svc-%05d", i)
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: str("bench-scale"), Name: name + str("-abcde"), ResourceVersion: str("%d", 100000+i),
			UID:             "0123456789abcdef0123456789abcdef0123",
			Labels:          map[string]string{discoveryv1.LabelServiceName: str("%s", name), "endpointslice.kubernetes.io/managed-by": str("bench")},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: str("%s", name), UID: "0123456789abcdef0123456789abcdef0123", Controller: ptr.To(true)}},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(str("http")), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](8080)}},
	}
	for j := range per {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{str("198.19.%d.%d", j+1, i%250+1)},
			NodeName:   ptr.To(str("node%d", j%3+1)),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
			TargetRef:  &corev1.ObjectReference{Kind: str("Pod"), Namespace: str("bench-scale"), Name: str("%s-%d", name, j), UID: "0123456789abcdef0123456789abcdef0123"},
		})
	}
	return s
}
