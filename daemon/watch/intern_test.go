package watch

import (
	"fmt"
	"maps"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

func samePtr(a, b map[string]string) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// TestTrimServiceSharesAnnotations: Services with equal bgplb.io annotations end up with
// one shared map holding exactly those annotations; different ones, requested IPs and
// other annotations are not mixed up.
func TestTrimServiceSharesAnnotations(t *testing.T) {
	trim := trimService(newAnnotationInterner(), newVocabulary())
	svc := func(name string, ann map[string]string) *corev1.Service {
		out, err := trim(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Annotations: ann,
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}})
		if err != nil {
			t.Fatal(err)
		}
		return out.(*corev1.Service)
	}
	a := svc("a", map[string]string{v1alpha1.AnnotationPool: "blue", "kubectl.kubernetes.io/last-applied-configuration": "{}"})
	b := svc("b", map[string]string{v1alpha1.AnnotationPool: "blue", "other": "x"})
	c := svc("c", map[string]string{v1alpha1.AnnotationPool: "red"})
	d := svc("d", map[string]string{v1alpha1.AnnotationPool: "blue", v1alpha1.AnnotationLoadBalancerIPs: "198.18.64.1"})
	e := svc("e", map[string]string{v1alpha1.AnnotationPool: "blue", v1alpha1.AnnotationLoadBalancerIPs: "198.18.64.1"})
	f := svc("f", map[string]string{"other": "x"})

	if want := map[string]string{v1alpha1.AnnotationPool: "blue"}; !maps.Equal(a.Annotations, want) || !maps.Equal(b.Annotations, want) {
		t.Fatalf("a %v, b %v: want %v", a.Annotations, b.Annotations, want)
	}
	if !samePtr(a.Annotations, b.Annotations) {
		t.Errorf("a and b have equal annotations but two maps")
	}
	if c.Annotations[v1alpha1.AnnotationPool] != "red" || samePtr(a.Annotations, c.Annotations) {
		t.Errorf("c: %v (shared with a: %v)", c.Annotations, samePtr(a.Annotations, c.Annotations))
	}
	if len(d.Annotations) != 2 || samePtr(d.Annotations, e.Annotations) {
		t.Errorf("requested IPs: d %v, e %v, shared %v; want two maps of 2", d.Annotations, e.Annotations, samePtr(d.Annotations, e.Annotations))
	}
	g := svc("g", map[string]string{corev1.AnnotationLoadBalancerSourceRangesKey: "198.51.100.0/24", "other": "x"})
	if want := map[string]string{corev1.AnnotationLoadBalancerSourceRangesKey: "198.51.100.0/24"}; !maps.Equal(g.Annotations, want) {
		t.Errorf("legacy source-ranges annotation: got %v, want %v", g.Annotations, want)
	}
	if f.Annotations != nil || a.ManagedFields != nil {
		t.Errorf("f annotations %v, a managedFields %v: want none", f.Annotations, a.ManagedFields)
	}
}

// TestInternerBounded: past maxInterned distinct maps nothing new is remembered, but
// every map is still returned unchanged and known ones are still shared.
func TestInternerBounded(t *testing.T) {
	in := newAnnotationInterner()
	first := in.intern(map[string]string{v1alpha1.AnnotationPool: "p0"})
	for i := 1; i < maxInterned+50; i++ {
		m := map[string]string{v1alpha1.AnnotationPool: fmt.Sprintf("p%d", i)}
		if got := in.intern(m); !samePtr(got, m) {
			t.Fatalf("p%d: returned another map", i)
		}
	}
	if len(in.maps) != maxInterned {
		t.Fatalf("%d maps remembered, want %d", len(in.maps), maxInterned)
	}
	if got := in.intern(map[string]string{v1alpha1.AnnotationPool: "p0"}); !samePtr(got, first) {
		t.Errorf("p0 not shared after the table filled")
	}
	late := map[string]string{v1alpha1.AnnotationPool: fmt.Sprintf("p%d", maxInterned+10)}
	if got := in.intern(late); !samePtr(got, late) || got[v1alpha1.AnnotationPool] != late[v1alpha1.AnnotationPool] {
		t.Errorf("late map changed: %v", got)
	}
}
