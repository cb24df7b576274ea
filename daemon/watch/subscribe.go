package watch

import (
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/bgplb/bgplb/daemon/registry/api"
)

// Triggers says which keys a Queue receives for which change. For the []string fields,
// an empty list ignores the source, AllServices enqueues every Service key, and any other
// value is enqueued as is (a controller's fixed key such as "@peers").
type Triggers struct {
	// Services enqueues "namespace/name" on every Service add, update and delete.
	Services bool
	// Slices enqueues the Service key of every changed EndpointSlice.
	Slices bool
	// Node is enqueued when this node's Node object changes.
	Node []string
	// Nodes is enqueued when any Node object changes (the leader plans for every node);
	// needs EnableLeaderCaches first (ignored before).
	Nodes []string
	// Secrets is enqueued when a Secret of the daemon's namespace changes.
	Secrets []string
	// Namespaces is enqueued when a Namespace changes (its labels feed pool selectors).
	Namespaces []string
	// Pools, Peers, Advertisements and NodeStates are enqueued when an object of that
	// bgplb.io kind changes. NodeStates needs EnableLeaderCaches first (ignored before).
	Pools, Peers, Advertisements, NodeStates []string
	// NodeStateChanges, when set, replaces NodeStates: it is called on every BGPNodeState
	// add, update and delete with the stored objects before and after (nil for none;
	// the informer's transform applies) and the keys it returns are enqueued (AllServices
	// as above). The Announced aggregator uses it to resync only the Services whose
	// announcing nodes changed.
	NodeStateChanges func(oldObj, newObj any) []string
}

// Subscribe adds event handlers that enqueue into q according to t. It returns a function
// that removes the handlers (for controllers that stop while the caches keep running, such
// as the LB-IPAM controller losing leadership). Handlers added to started informers
// receive an add for every cached object first.
func (c *Caches) Subscribe(q *Queue, t Triggers) (remove func()) {
	var regs []func()
	add := func(inf cache.SharedIndexInformer, h cache.ResourceEventHandler) {
		if inf == nil || h == nil {
			return
		}
		reg, err := inf.AddEventHandler(h)
		if err != nil {
			return // only fails on a stopped informer: nothing will be delivered anyway
		}
		regs = append(regs, func() { _ = inf.RemoveEventHandler(reg) })
	}
	if t.Services {
		add(c.services, changeHandler(func(obj any) {
			if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
				q.Add(key)
			}
		}))
	}
	if t.Slices {
		regs = append(regs, c.slices.subscribe(q.Add))
	}
	add(c.nodes, nodeFilter(c.opts.NodeName, c.keyHandler(q, t.Node)))
	add(c.secretsI, c.keyHandler(q, t.Secrets))
	add(c.nsI, c.keyHandler(q, t.Namespaces))
	if c.crd != nil {
		add(c.crd.pools, c.keyHandler(q, t.Pools))
		add(c.crd.peers, c.keyHandler(q, t.Peers))
		add(c.crd.adverts, c.keyHandler(q, t.Advertisements))
		add(c.crd.allNodesInformer(), nodeFilter("", c.keyHandler(q, t.Nodes)))
		if inf := c.crd.nodeStateInformer(); inf != nil {
			if t.NodeStateChanges != nil {
				add(inf, c.diffHandler(q, t.NodeStateChanges))
			} else {
				add(inf, c.keyHandler(q, t.NodeStates))
			}
		}
	}
	return func() {
		for _, r := range regs {
			r()
		}
	}
}

// EnqueueEndpoint enqueues into q the Services with a local endpoint at one of ep's IPs.
// It is the registry's change handler (registry.Subscribe): cheap and non-blocking.
func (c *Caches) EnqueueEndpoint(q *Queue, ep api.Endpoint) {
	for _, ip := range ep.IPs {
		for _, key := range c.ServicesForLocalIP(ip) {
			q.Add(key)
		}
	}
}

// EnqueueAll enqueues every Service key into q.
func (c *Caches) EnqueueAll(q *Queue) {
	for _, k := range c.ServiceKeys() {
		q.Add(k)
	}
}

func (c *Caches) keyHandler(q *Queue, keys []string) cache.ResourceEventHandler {
	if len(keys) == 0 {
		return nil
	}
	return changeHandler(func(any) { c.enqueueKeys(q, keys) })
}

// diffHandler enqueues the keys changed returns for each add, changed update and delete.
func (c *Caches) diffHandler(q *Queue, changed func(oldObj, newObj any) []string) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { c.enqueueKeys(q, changed(nil, obj)) },
		UpdateFunc: func(oldObj, newObj any) {
			if !sameVersion(oldObj, newObj) {
				c.enqueueKeys(q, changed(oldObj, newObj))
			}
		},
		DeleteFunc: func(obj any) { c.enqueueKeys(q, changed(unwrap(obj), nil)) },
	}
}

// enqueueKeys adds keys to q, every Service key for AllServices.
func (c *Caches) enqueueKeys(q *Queue, keys []string) {
	for _, key := range keys {
		if key == AllServices {
			c.EnqueueAll(q)
			continue
		}
		q.Add(key)
	}
}

// changeHandler calls fn on add, delete, and on updates that changed the object (resyncs
// with an unchanged resourceVersion are ignored).
func changeHandler(fn func(obj any)) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { fn(obj) },
		UpdateFunc: func(oldObj, newObj any) {
			if !sameVersion(oldObj, newObj) {
				fn(newObj)
			}
		},
		DeleteFunc: func(obj any) { fn(obj) },
	}
}

// sameVersion reports whether an update is a resync: both objects carry the same
// resourceVersion.
func sameVersion(oldObj, newObj any) bool {
	o, ok1 := oldObj.(metav1.Object)
	n, ok2 := newObj.(metav1.Object)
	return ok1 && ok2 && o.GetResourceVersion() != "" && o.GetResourceVersion() == n.GetResourceVersion()
}

// nodeFilter passes on the events of Node name (every Node when name is empty), and
// updates only when something eligibility or peer selection reads changed (labels,
// addresses, condition statuses, taints); kubelet heartbeats that only move timestamps
// would otherwise resync every Service.
func nodeFilter(name string, h cache.ResourceEventHandler) cache.ResourceEventHandler {
	if h == nil {
		return nil
	}
	return cache.FilteringResourceEventHandler{
		FilterFunc: func(obj any) bool {
			m, ok := unwrap(obj).(metav1.Object)
			return ok && (name == "" || m.GetName() == name)
		},
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc: func(obj any) { h.OnAdd(obj, false) },
			UpdateFunc: func(oldObj, newObj any) {
				o, ok1 := oldObj.(*corev1.Node)
				n, ok2 := newObj.(*corev1.Node)
				if ok1 && ok2 && !nodeRelevantChange(o, n) {
					return
				}
				h.OnUpdate(oldObj, newObj)
			},
			DeleteFunc: func(obj any) { h.OnDelete(obj) },
		},
	}
}

func nodeRelevantChange(o, n *corev1.Node) bool {
	if !maps.Equal(o.Labels, n.Labels) || !slices.Equal(o.Status.Addresses, n.Status.Addresses) ||
		!slices.Equal(o.Spec.PodCIDRs, n.Spec.PodCIDRs) || o.Spec.Unschedulable != n.Spec.Unschedulable ||
		len(o.Spec.Taints) != len(n.Spec.Taints) || len(o.Status.Conditions) != len(n.Status.Conditions) ||
		(o.DeletionTimestamp == nil) != (n.DeletionTimestamp == nil) {
		return true
	}
	for i := range o.Spec.Taints {
		if o.Spec.Taints[i].Key != n.Spec.Taints[i].Key || o.Spec.Taints[i].Effect != n.Spec.Taints[i].Effect || o.Spec.Taints[i].Value != n.Spec.Taints[i].Value {
			return true
		}
	}
	for i := range o.Status.Conditions {
		if o.Status.Conditions[i].Type != n.Status.Conditions[i].Type || o.Status.Conditions[i].Status != n.Status.Conditions[i].Status {
			return true
		}
	}
	return false
}

func unwrap(obj any) any {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return d.Obj
	}
	return obj
}
