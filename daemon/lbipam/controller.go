package lbipam

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/client/clientset/versioned"
	bgplisters "github.com/bgplb/bgplb/daemon/client/listers/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/ipam"
	"github.com/bgplb/bgplb/daemon/metrics"
	"github.com/bgplb/bgplb/daemon/servicespec"
)

// PoolsKey is the work-queue key for "pools or namespaces changed".
const PoolsKey = "@pools"

// resyncWriters is how many Service status writes a full resync has in flight.
const resyncWriters = 16

// Sources are the caches the controller reads (never mutated).
type Sources struct {
	Services        corelisters.ServiceLister
	Pools           bgplisters.LoadBalancerIPPoolLister
	NamespaceLabels func(namespace string) labels.Set
}

// Controller writes LB-IPAM decisions. Create it with New; Sync is its watch.SyncFunc.
type Controller struct {
	kube     kubernetes.Interface
	crd      versioned.Interface
	src      Sources
	alloc    *ipam.Allocator
	recorder record.EventRecorder
	requeue  func(key string)

	mu          sync.Mutex
	initialized bool
	// wmu guards pending and svcWritten, which resyncAll's concurrent writers share
	// (mu is held around the whole resync).
	wmu     sync.Mutex
	pending map[string]struct{} // Service keys of ours without an address (retried on release)
	// poolWritten is the status last written per pool name: the cache may lag behind our
	// own writes, so "cache equals desired" alone could skip a needed correction.
	poolWritten map[string]v1alpha1.LoadBalancerIPPoolStatus
	// svcWritten remembers, per Service key, what was last written on top of which cached
	// resourceVersion: while the cache still shows that version, the write is not repeated.
	svcWritten map[string]written
}

type written struct {
	fromRV  string
	ingress []corev1.LoadBalancerIngress
	cond    metav1.Condition
	src     *metav1.Condition // bgplb.io/SourceRangesValid, nil: removed
}

// New returns a controller. recorder may be nil (no events); requeue (may be nil) is
// called with the keys of pending Services when an address is released.
func New(kube kubernetes.Interface, crd versioned.Interface, src Sources, cfg ipam.Config, recorder record.EventRecorder, requeue func(string)) *Controller {
	return &Controller{kube: kube, crd: crd, src: src, alloc: ipam.New(cfg), recorder: recorder, requeue: requeue,
		poolWritten: map[string]v1alpha1.LoadBalancerIPPoolStatus{}, pending: map[string]struct{}{}, svcWritten: map[string]written{}}
}

// Sync is the watch.SyncFunc.
func (c *Controller) Sync(ctx context.Context, key string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.initialized || key == PoolsKey {
		if err := c.resyncAll(ctx); err != nil {
			return err
		}
		c.initialized = true
		if key == PoolsKey {
			return nil
		}
	}
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil // malformed key: never syncs
	}
	svc, err := c.src.Services.Services(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		if len(c.alloc.Allocation(key)) > 0 {
			c.alloc.Release(key)
			c.retryPending(key)
		}
		delete(c.pending, key)
		delete(c.svcWritten, key)
		return c.writePools(ctx)
	}
	if err != nil {
		return fmt.Errorf("get service %s: %w", key, err)
	}
	before := c.alloc.Allocation(key)
	res := c.alloc.Assign(svc, c.src.NamespaceLabels(svc.Namespace))
	if err := c.writeService(ctx, svc, res); err != nil {
		return err
	}
	if !addrsEqual(before, res.IPs) {
		if len(before) > 0 {
			c.retryPending(key)
		}
		return c.writePools(ctx)
	}
	return nil
}

// resyncAll re-reads the pools and re-assigns every Service.
func (c *Controller) resyncAll(ctx context.Context) error {
	pools, err := c.src.Pools.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("list loadbalancerippools: %w", err)
	}
	c.alloc.SetPools(pools)
	svcs, err := c.src.Services.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("list services: %w", err)
	}
	results := c.alloc.AssignAll(svcs, c.src.NamespaceLabels)
	// The decisions are made; writing them is I/O bound (one status update per
	// Service), so a few writers run at once: 10k Services after a leader change or
	// a pool edit are written in seconds, not minutes.
	var (
		errs   []error
		errsMu sync.Mutex
		wg     sync.WaitGroup
	)
	next := make(chan int)
	for w := 0; w < resyncWriters; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := c.writeService(ctx, svcs[i], results[i]); err != nil {
					errsMu.Lock()
					errs = append(errs, err)
					errsMu.Unlock()
				}
			}
		}()
	}
	for i := range results {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := c.writePools(ctx); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("resync allocations: %d errors, first: %w", len(errs), errs[0])
	}
	klog.FromContext(ctx).V(2).Info("LB-IPAM resynced", "services", len(svcs), "pools", len(pools))
	return nil
}

// retryPending requeues Services waiting for an address (except the releasing one).
func (c *Controller) retryPending(except string) {
	if c.requeue == nil {
		return
	}
	for k := range c.pending {
		if k != except {
			c.requeue(k)
		}
	}
}

// writeService writes status ingress + the IPAllocated condition when they changed.
func (c *Controller) writeService(ctx context.Context, svc *corev1.Service, res ipam.Result) error {
	c.wmu.Lock()
	if !res.Ours {
		delete(c.pending, res.Key)
		c.wmu.Unlock()
		return nil // never write to a Service that is not ours
	}
	if len(res.IPs) == 0 {
		c.pending[res.Key] = struct{}{}
	} else {
		delete(c.pending, res.Key)
	}
	ingress := res.Ingress()
	cond := res.Condition(svc.Generation)
	old := meta.FindStatusCondition(svc.Status.Conditions, cond.Type)
	src := sourceRangesCondition(svc)
	oldSrc := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ConditionSourceRangesValid)
	if ingressEqual(svc.Status.LoadBalancer.Ingress, ingress) && sameCondition(old, cond) && sameOptCondition(oldSrc, src) {
		delete(c.svcWritten, res.Key)
		c.wmu.Unlock()
		return nil
	}
	if w, ok := c.svcWritten[res.Key]; ok && w.fromRV == svc.ResourceVersion && svc.ResourceVersion != "" &&
		ingressEqual(w.ingress, ingress) && sameCondition(&w.cond, cond) && sameOptCondition(w.src, src) {
		c.wmu.Unlock()
		return nil // already written; the cache has not caught up yet
	}
	c.wmu.Unlock()
	upd := svc.DeepCopy()
	upd.Status.LoadBalancer.Ingress = ingress
	meta.SetStatusCondition(&upd.Status.Conditions, cond)
	if src != nil {
		meta.SetStatusCondition(&upd.Status.Conditions, *src)
	} else {
		meta.RemoveStatusCondition(&upd.Status.Conditions, v1alpha1.ConditionSourceRangesValid)
	}
	if _, err := c.kube.CoreV1().Services(svc.Namespace).UpdateStatus(ctx, upd, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update status of service %s: %w", res.Key, err)
	}
	c.wmu.Lock()
	c.svcWritten[res.Key] = written{fromRV: svc.ResourceVersion, ingress: ingress, cond: cond, src: src}
	c.wmu.Unlock()
	if c.recorder != nil && src != nil && src.Status == metav1.ConditionFalse && !sameOptCondition(oldSrc, src) {
		c.recorder.Event(svc, corev1.EventTypeWarning, src.Reason, src.Message)
	}
	metrics.AllocationChanges.WithLabelValues(res.Reason).Inc()
	if !res.Allocated {
		metrics.AllocationFailures.WithLabelValues(res.Reason).Inc()
	}
	klog.FromContext(ctx).V(2).Info("service allocation written", "service", klog.KObj(svc), "ips", res.IPs,
		"reason", res.Reason, "message", res.Message)
	if c.recorder != nil && (old == nil || old.Reason != cond.Reason || old.Message != cond.Message || !ingressEqual(svc.Status.LoadBalancer.Ingress, ingress)) {
		if res.Allocated {
			c.recorder.Eventf(svc, corev1.EventTypeNormal, res.Reason, "Assigned %v from pool(s) %v", res.IPs, res.Pools)
		} else {
			c.recorder.Event(svc, corev1.EventTypeWarning, res.Reason, res.Message)
		}
	}
	return nil
}

// writePools writes each pool's status when it changed and updates the allocation gauges.
func (c *Controller) writePools(ctx context.Context) error {
	var v4, v6 int64
	var errs []error
	for _, ps := range c.alloc.Pools() {
		if ps.Status.IPv4 != nil {
			v4 += ps.Status.IPv4.Used
		}
		if ps.Status.IPv6 != nil {
			v6 += ps.Status.IPv6.Used
		}
		pool, err := c.src.Pools.Get(ps.Name)
		if err != nil {
			continue // deleted meanwhile
		}
		upd := pool.DeepCopy()
		for _, cond := range ps.Status.Conditions {
			cond.ObservedGeneration = pool.Generation
			meta.SetStatusCondition(&upd.Status.Conditions, cond)
		}
		// Drop conditions the allocator no longer reports.
		upd.Status.Conditions = slices.DeleteFunc(upd.Status.Conditions, func(x metav1.Condition) bool {
			return meta.FindStatusCondition(ps.Status.Conditions, x.Type) == nil
		})
		upd.Status.IPv4, upd.Status.IPv6 = ps.Status.IPv4, ps.Status.IPv6
		last, wrote := c.poolWritten[ps.Name]
		if reflect.DeepEqual(upd.Status, pool.Status) && (!wrote || reflect.DeepEqual(last, upd.Status)) {
			continue
		}
		if _, err := c.crd.BgplbV1alpha1().LoadBalancerIPPools().UpdateStatus(ctx, upd, metav1.UpdateOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("update status of pool %s: %w", ps.Name, err))
			continue
		}
		c.poolWritten[ps.Name] = upd.Status
	}
	metrics.Allocations.WithLabelValues("IPv4").Set(float64(v4))
	metrics.Allocations.WithLabelValues("IPv6").Set(float64(v6))
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

func ingressEqual(a, b []corev1.LoadBalancerIngress) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].IP != b[i].IP || a[i].Hostname != b[i].Hostname || !reflect.DeepEqual(a[i].IPMode, b[i].IPMode) || len(a[i].Ports) != 0 {
			return false
		}
	}
	return true
}

// sourceRangesCondition returns the bgplb.io/SourceRangesValid condition svc should carry,
// nil when it gives no source ranges.
func sourceRangesCondition(svc *corev1.Service) *metav1.Condition {
	sr := servicespec.ParseSourceRanges(svc)
	if !sr.Restrict {
		return nil
	}
	c := &metav1.Condition{Type: v1alpha1.ConditionSourceRangesValid, Status: metav1.ConditionTrue,
		Reason: v1alpha1.ReasonSourceRangesValid, Message: "source ranges from " + sr.From, ObservedGeneration: svc.Generation}
	if err := sr.Err(); err != nil {
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, v1alpha1.ReasonInvalidSourceRanges, err.Error()
		if sr.Exceeded > 0 {
			c.Reason = v1alpha1.ReasonTooManySourceRanges
		}
	}
	return c
}

// sameOptCondition is sameCondition for a condition that may be absent (nil).
func sameOptCondition(old, c *metav1.Condition) bool {
	if c == nil {
		return old == nil
	}
	return sameCondition(old, *c)
}

func sameCondition(old *metav1.Condition, c metav1.Condition) bool {
	return old != nil && old.Status == c.Status && old.Reason == c.Reason && old.Message == c.Message &&
		old.ObservedGeneration == c.ObservedGeneration
}

func addrsEqual(a, b []netip.Addr) bool { return slices.Equal(a, b) }
