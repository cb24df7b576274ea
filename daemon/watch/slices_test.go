package watch

import (
	"net/netip"
	"slices"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// TestSliceStore: the store behind the Reflector enqueues exactly the Services whose
// slices changed (old and new Service when the label moves; nothing for an unchanged
// resourceVersion), Replace drops what the list no longer has, and a late subscriber
// gets every cached Service once.
func TestSliceStore(t *testing.T) {
	mk := func(name, svc, rv string, nodeIPs ...string) *discoveryv1.EndpointSlice {
		s := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, ResourceVersion: rv,
			Labels: map[string]string{discoveryv1.LabelServiceName: svc}}, AddressType: discoveryv1.AddressTypeIPv4}
		for i := 0; i+1 < len(nodeIPs); i += 2 {
			s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{nodeIPs[i+1]}, NodeName: ptr.To(nodeIPs[i])})
		}
		return s
	}
	st := newSliceStore("node1")
	var got []string
	remove := st.subscribe(func(k string) { got = append(got, k) })
	check := func(step string, want ...string) {
		t.Helper()
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("%s: enqueued %v, want %v", step, got, want)
		}
		got = nil
	}
	must(t, st.Replace([]any{mk("a-1", "a", "1", "node1", "198.19.1.1"), mk("b-1", "b", "1", "node2", "198.19.2.1")}, "1"))
	check("first list", "ns/a", "ns/b")
	if !st.hasSynced() {
		t.Fatal("not synced after the first list")
	}
	must(t, st.Update(mk("a-1", "a", "1", "node1", "198.19.1.1")))
	check("same resourceVersion")
	must(t, st.Update(mk("a-1", "c", "2", "node1", "198.19.1.2")))
	check("label moved", "ns/a", "ns/c")
	if l := st.forService("ns", "a"); len(l) != 0 {
		t.Fatalf("service a keeps %d slices", len(l))
	}
	if k := st.servicesForLocalIP(netip.MustParseAddr("198.19.1.1")); k != nil {
		t.Fatalf("old local IP still maps to %v", k)
	}
	if k := st.servicesForLocalIP(netip.MustParseAddr("::ffff:198.19.1.2")); !slices.Equal(k, []string{"ns/c"}) {
		t.Fatalf("new local IP maps to %v", k)
	}
	if k := st.servicesForLocalIP(netip.MustParseAddr("198.19.2.1")); k != nil {
		t.Fatalf("another node's IP maps to %v", k)
	}
	must(t, st.Delete(cache.DeletedFinalStateUnknown{Key: "ns/b-1", Obj: mk("b-1", "b", "1")}))
	check("deleted", "ns/b")
	must(t, st.Replace([]any{mk("d-1", "d", "3")}, "3"))
	check("relist", "ns/c", "ns/d")
	if l := st.forService("ns", "c"); len(l) != 0 {
		t.Fatalf("relist kept %d slices of c", len(l))
	}
	remove()
	must(t, st.Update(mk("d-1", "d", "4")))
	check("after remove")
	st.subscribe(func(k string) { got = append(got, k) })
	check("late subscriber", "ns/d")
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
