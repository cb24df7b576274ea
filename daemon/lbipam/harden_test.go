package lbipam

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// update replaces the Service in the fake API server and the cache, like a user's edit.
func (f *fixture) update(name string, mutate func(*corev1.Service)) {
	s := f.get(name).DeepCopy()
	mutate(s)
	_, err := f.kube.CoreV1().Services("default").Update(context.Background(), s, metav1.UpdateOptions{})
	must(f.t, err)
	f.feedBack()
}

func (f *fixture) drainEvents() []string {
	var out []string
	for {
		select {
		case ev := <-f.recorder.Events:
			out = append(out, ev)
		default:
			return out
		}
	}
}

// TestUnparsableSourceRangeCondition: an entry that cannot be parsed gives
// SourceRangesValid=False with the entry and a warning event; fixing it turns the
// condition True; removing the ranges removes the condition.
func TestUnparsableSourceRangeCondition(t *testing.T) {
	ctx := context.Background()
	svc := service("web", v1alpha1.DefaultLoadBalancerClass)
	svc.Annotations = map[string]string{corev1.AnnotationLoadBalancerSourceRangesKey: "198.51.100.0/24, 010.0.0.0/8"}
	f := newFixture(t, pool("p", "203.0.113.8/30"), svc)
	must(t, f.c.Sync(ctx, "default/web"))
	f.feedBack()
	c := meta.FindStatusCondition(f.get("web").Status.Conditions, v1alpha1.ConditionSourceRangesValid)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonInvalidSourceRanges ||
		!strings.Contains(c.Message, `" 010.0.0.0/8"`) || !strings.Contains(c.Message, "accept no client") {
		t.Fatalf("condition = %+v", c)
	}
	found := false
	for _, ev := range f.drainEvents() {
		found = found || strings.HasPrefix(ev, "Warning "+v1alpha1.ReasonInvalidSourceRanges)
	}
	if !found {
		t.Fatal("no InvalidSourceRanges warning event")
	}
	// Unchanged: no second write.
	f.writes()
	must(t, f.c.Sync(ctx, "default/web"))
	if w := f.writes(); len(w) != 0 {
		t.Fatalf("unchanged sync wrote %v", w)
	}

	f.update("web", func(s *corev1.Service) {
		s.Annotations[corev1.AnnotationLoadBalancerSourceRangesKey] = "198.51.100.0/24"
	})
	must(t, f.c.Sync(ctx, "default/web"))
	f.feedBack()
	if c := meta.FindStatusCondition(f.get("web").Status.Conditions, v1alpha1.ConditionSourceRangesValid); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("after fix: %+v", c)
	}
	f.update("web", func(s *corev1.Service) { delete(s.Annotations, corev1.AnnotationLoadBalancerSourceRangesKey) })
	must(t, f.c.Sync(ctx, "default/web"))
	f.feedBack()
	if c := meta.FindStatusCondition(f.get("web").Status.Conditions, v1alpha1.ConditionSourceRangesValid); c != nil {
		t.Fatalf("no ranges but condition %+v", c)
	}
}

// TestBadRequestKeepsStatus: through the controller, a pool annotation typo keeps the
// Service's ingress, turns IPAllocated False with the reason and emits a warning; a new
// Service gets another address; the fix restores Allocated with the same address.
func TestBadRequestKeepsStatus(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, pool("p", "203.0.113.8/30"), service("live", v1alpha1.DefaultLoadBalancerClass))
	must(t, f.c.Sync(ctx, "default/live"))
	f.feedBack()
	ip := f.get("live").Status.LoadBalancer.Ingress[0].IP
	f.drainEvents()

	f.update("live", func(s *corev1.Service) { s.Annotations = map[string]string{v1alpha1.AnnotationPool: "typo"} })
	must(t, f.c.Sync(ctx, "default/live"))
	f.feedBack()
	live := f.get("live")
	c := meta.FindStatusCondition(live.Status.Conditions, v1alpha1.ConditionIPAllocated)
	if len(live.Status.LoadBalancer.Ingress) != 1 || live.Status.LoadBalancer.Ingress[0].IP != ip ||
		c == nil || c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonInvalidRequest {
		t.Fatalf("after typo: ingress %+v condition %+v", live.Status.LoadBalancer.Ingress, c)
	}
	if evs := f.drainEvents(); len(evs) == 0 || !strings.HasPrefix(evs[0], "Warning "+v1alpha1.ReasonInvalidRequest) {
		t.Fatalf("events %v", evs)
	}

	next := service("next", v1alpha1.DefaultLoadBalancerClass)
	_, err := f.kube.CoreV1().Services("default").Create(ctx, next, metav1.CreateOptions{})
	must(t, err)
	must(t, f.services.Add(next))
	must(t, f.c.Sync(ctx, "default/next"))
	f.feedBack()
	if got := f.get("next").Status.LoadBalancer.Ingress; len(got) != 1 || got[0].IP == ip {
		t.Fatalf("next got %+v (live holds %s)", got, ip)
	}

	f.update("live", func(s *corev1.Service) { delete(s.Annotations, v1alpha1.AnnotationPool) })
	must(t, f.c.Sync(ctx, "default/live"))
	f.feedBack()
	live = f.get("live")
	c = meta.FindStatusCondition(live.Status.Conditions, v1alpha1.ConditionIPAllocated)
	if live.Status.LoadBalancer.Ingress[0].IP != ip || c.Status != metav1.ConditionTrue {
		t.Fatalf("after fix: ingress %+v condition %+v", live.Status.LoadBalancer.Ingress, c)
	}
}

// TestTooManySourceRangesCondition: ranges × ports over the per-Service cap give
// SourceRangesValid=False with reason TooManySourceRanges and a warning event.
func TestTooManySourceRangesCondition(t *testing.T) {
	ctx := context.Background()
	svc := service("web", v1alpha1.DefaultLoadBalancerClass)
	for i := 0; i < 64; i++ {
		svc.Spec.LoadBalancerSourceRanges = append(svc.Spec.LoadBalancerSourceRanges, fmt.Sprintf("198.51.100.%d/32", i))
	}
	for len(svc.Spec.Ports) < 64 {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: fmt.Sprint("p", len(svc.Spec.Ports)), Port: int32(8000 + len(svc.Spec.Ports))})
	}
	f := newFixture(t, pool("p", "203.0.113.8/30"), svc)
	must(t, f.c.Sync(ctx, "default/web"))
	f.feedBack()
	c := meta.FindStatusCondition(f.get("web").Status.Conditions, v1alpha1.ConditionSourceRangesValid)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonTooManySourceRanges || !strings.Contains(c.Message, "accept no client") {
		t.Fatalf("condition = %+v", c)
	}
	found := false
	for _, ev := range f.drainEvents() {
		found = found || strings.HasPrefix(ev, "Warning "+v1alpha1.ReasonTooManySourceRanges)
	}
	if !found {
		t.Fatal("no TooManySourceRanges warning event")
	}
}
