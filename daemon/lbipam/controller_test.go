package lbipam

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	crdfake "github.com/bgplb/bgplb/daemon/client/clientset/versioned/fake"
	bgplisters "github.com/bgplb/bgplb/daemon/client/listers/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/ipam"
)

type fixture struct {
	t        *testing.T
	kube     *fake.Clientset
	crd      *crdfake.Clientset
	services cache.Indexer
	pools    cache.Indexer
	recorder *record.FakeRecorder
	requeued []string
	c        *Controller
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	f := &fixture{t: t,
		services: cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}),
		pools:    cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{}),
		recorder: record.NewFakeRecorder(100),
	}
	var kubeObjs, crdObjs []runtime.Object
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.Service:
			kubeObjs = append(kubeObjs, o)
			must(t, f.services.Add(o))
		case *v1alpha1.LoadBalancerIPPool:
			crdObjs = append(crdObjs, o)
			must(t, f.pools.Add(o))
		}
	}
	f.kube = fake.NewSimpleClientset(kubeObjs...)
	f.crd = crdfake.NewSimpleClientset(crdObjs...)
	f.newController()
	return f
}

func (f *fixture) newController() {
	f.c = New(f.kube, f.crd, Sources{
		Services:        corelisters.NewServiceLister(f.services),
		Pools:           bgplisters.NewLoadBalancerIPPoolLister(f.pools),
		NamespaceLabels: func(string) labels.Set { return nil },
	}, ipam.Config{}, f.recorder, func(k string) { f.requeued = append(f.requeued, k) })
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// feedBack copies what the fake API server holds into the cache, like an informer would.
func (f *fixture) feedBack() {
	svcs, err := f.kube.CoreV1().Services("").List(context.Background(), metav1.ListOptions{})
	must(f.t, err)
	for i := range svcs.Items {
		must(f.t, f.services.Update(&svcs.Items[i]))
	}
	pools, err := f.crd.BgplbV1alpha1().LoadBalancerIPPools().List(context.Background(), metav1.ListOptions{})
	must(f.t, err)
	for i := range pools.Items {
		must(f.t, f.pools.Update(&pools.Items[i]))
	}
}

func (f *fixture) writes() []k8stesting.Action {
	var out []k8stesting.Action
	for _, a := range append(f.kube.Actions(), f.crd.Actions()...) {
		if a.GetVerb() == "update" || a.GetVerb() == "patch" || a.GetVerb() == "create" {
			out = append(out, a)
		}
	}
	f.kube.ClearActions()
	f.crd.ClearActions()
	return out
}

func service(name, class string) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Generation: 1},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer,
			Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}}}}
	if class != "" {
		s.Spec.LoadBalancerClass = ptr.To(class)
	}
	return s
}

func pool(name, cidr string) *v1alpha1.LoadBalancerIPPool {
	return &v1alpha1.LoadBalancerIPPool{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.LoadBalancerIPPoolSpec{Blocks: []v1alpha1.IPBlock{{CIDR: cidr}}}}
}

func (f *fixture) get(name string) *corev1.Service {
	s, err := f.kube.CoreV1().Services("default").Get(context.Background(), name, metav1.GetOptions{})
	must(f.t, err)
	return s
}

func TestAllocatesOursOnlyAndWritesOnlyOnChange(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, pool("p", "203.0.113.8/30"), service("web", v1alpha1.DefaultLoadBalancerClass), service("foreign", "example.com/other"))
	must(t, f.c.Sync(ctx, "default/web"))
	web := f.get("web")
	if len(web.Status.LoadBalancer.Ingress) != 1 || web.Status.LoadBalancer.Ingress[0].IPMode == nil ||
		*web.Status.LoadBalancer.Ingress[0].IPMode != corev1.LoadBalancerIPModeVIP {
		t.Fatalf("web ingress = %+v, want one VIP-mode address", web.Status.LoadBalancer.Ingress)
	}
	cond := meta.FindStatusCondition(web.Status.Conditions, v1alpha1.ConditionIPAllocated)
	if cond == nil || cond.Status != metav1.ConditionTrue || cond.Reason != v1alpha1.ReasonAllocated {
		t.Fatalf("condition = %+v", cond)
	}
	for _, a := range f.writes() {
		if u, ok := a.(k8stesting.UpdateAction); ok {
			if m, ok := u.GetObject().(metav1.Object); ok && m.GetName() == "foreign" {
				t.Fatalf("wrote to a foreign-class service: %v", a)
			}
		}
	}
	if len(f.get("foreign").Status.LoadBalancer.Ingress) != 0 {
		t.Fatal("foreign-class service got an address")
	}
	select {
	case ev := <-f.recorder.Events:
		t.Logf("event: %s", ev)
	default:
		t.Fatal("no event for the allocation")
	}

	// Nothing changed: a second sync writes nothing.
	f.feedBack()
	must(t, f.c.Sync(ctx, "default/web"))
	must(t, f.c.Sync(ctx, "default/foreign"))
	must(t, f.c.Sync(ctx, PoolsKey))
	if w := f.writes(); len(w) != 0 {
		t.Fatalf("unchanged syncs wrote %d times: %v", len(w), w)
	}

	// A new leader rebuilds from status and writes nothing either.
	f.newController()
	must(t, f.c.Sync(ctx, "default/web"))
	if w := f.writes(); len(w) != 0 {
		t.Fatalf("new leader wrote %d times: %v", len(w), w)
	}
	if got := f.get("web").Status.LoadBalancer.Ingress[0].IP; got != web.Status.LoadBalancer.Ingress[0].IP {
		t.Fatalf("new leader moved web from %s to %s", web.Status.LoadBalancer.Ingress[0].IP, got)
	}
}

func TestPendingServiceGetsReleasedAddress(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, pool("p", "203.0.113.9/32"), service("a", v1alpha1.DefaultLoadBalancerClass), service("b", v1alpha1.DefaultLoadBalancerClass))
	must(t, f.c.Sync(ctx, "default/a"))
	f.feedBack()
	must(t, f.c.Sync(ctx, "default/b"))
	f.feedBack()
	a, b := f.get("a"), f.get("b")
	if len(a.Status.LoadBalancer.Ingress)+len(b.Status.LoadBalancer.Ingress) != 1 {
		t.Fatalf("one-address pool gave %d addresses", len(a.Status.LoadBalancer.Ingress)+len(b.Status.LoadBalancer.Ingress))
	}
	holder, waiter := "a", "b"
	if len(b.Status.LoadBalancer.Ingress) == 1 {
		holder, waiter = "b", "a"
	}
	cond := meta.FindStatusCondition(f.get(waiter).Status.Conditions, v1alpha1.ConditionIPAllocated)
	if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != v1alpha1.ReasonPoolExhausted {
		t.Fatalf("waiter condition = %+v, want PoolExhausted", cond)
	}
	must(t, f.kube.CoreV1().Services("default").Delete(ctx, holder, metav1.DeleteOptions{}))
	must(t, f.services.Delete(f.get(waiter).DeepCopy()))
	must(t, f.services.Add(f.get(waiter)))
	must(t, f.services.Delete(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: holder}}))
	f.requeued = nil
	must(t, f.c.Sync(ctx, "default/"+holder))
	if len(f.requeued) != 1 || f.requeued[0] != "default/"+waiter {
		t.Fatalf("requeued %v after release, want the waiting service", f.requeued)
	}
	must(t, f.c.Sync(ctx, "default/"+waiter))
	if got := f.get(waiter).Status.LoadBalancer.Ingress; len(got) != 1 || got[0].IP != "203.0.113.9" {
		t.Fatalf("waiter ingress = %+v, want 203.0.113.9", got)
	}
	p, err := f.crd.BgplbV1alpha1().LoadBalancerIPPools().Get(ctx, "p", metav1.GetOptions{})
	must(t, err)
	if p.Status.IPv4 == nil || p.Status.IPv4.Used != 1 || p.Status.IPv4.Total != 1 {
		t.Fatalf("pool status = %+v", p.Status)
	}
}
