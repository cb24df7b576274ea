package watch

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	apiwatch "k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/bgplb/bgplb/daemon/eligibility/endpoints"
)

// nsName is a namespace and a name: an EndpointSlice's, or a Service's.
type nsName struct{ namespace, name string }

// sliceStore is the EndpointSlice cache. A client-go Reflector lists and watches
// EndpointSlices into it; it keeps only their typed views (endpoints.Slice), indexed by
// Service and by the IPs of this node's endpoints, and tells its subscribers the key of
// every Service whose slices changed. It replaces a shared informer, whose store would
// hold one index set per Service and per local IP (a map each: 3 MB at 10k Services)
// and whose per-handler buffers grow with every burst.
type sliceStore struct {
	node string

	mu        sync.RWMutex
	slices    map[nsName]*endpoints.Slice       // slice namespace/name -> view
	byService map[nsName][]*endpoints.Slice     // service namespace/name -> views of its slices
	byLocalIP map[netip.Addr][]*endpoints.Slice // unmapped IP of an endpoint on node -> views
	synced    bool                              // the first list was stored
	subs      map[int]func(key string)          // subscription id -> enqueue a Service key
	nextSub   int
}

var _ cache.ReflectorStore = &sliceStore{}

func newSliceStore(node string) *sliceStore {
	return &sliceStore{node: node, slices: map[nsName]*endpoints.Slice{}, byService: map[nsName][]*endpoints.Slice{},
		byLocalIP: map[netip.Addr][]*endpoints.Slice{}, subs: map[int]func(string){}}
}

// newSliceReflector returns the Reflector that fills store from the API server.
func newSliceReflector(kube kubernetes.Interface, store *sliceStore, resync time.Duration) *cache.Reflector {
	client := kube.DiscoveryV1().EndpointSlices(metav1.NamespaceAll)
	lw := cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return client.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (apiwatch.Interface, error) {
			return client.Watch(ctx, o)
		},
	}, kube)
	return cache.NewReflectorWithOptions(lw, &discoveryv1.EndpointSlice{}, store,
		cache.ReflectorOptions{Name: "endpointslice-views", ResyncPeriod: resync})
}

// Add implements cache.ReflectorStore.
func (s *sliceStore) Add(obj any) error { return s.Update(obj) }

// Update implements cache.ReflectorStore.
func (s *sliceStore) Update(obj any) error {
	es, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return fmt.Errorf("store endpointslice: unexpected %T", obj)
	}
	v := endpoints.FromEndpointSlice(es)
	s.mu.Lock()
	keys := s.putLocked(v, nil)
	subs := s.subscribersLocked()
	s.mu.Unlock()
	notify(subs, keys)
	return nil
}

// Delete implements cache.ReflectorStore.
func (s *sliceStore) Delete(obj any) error {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	m, ok := obj.(metav1.Object)
	if !ok {
		return fmt.Errorf("delete endpointslice: unexpected %T", obj)
	}
	s.mu.Lock()
	var keys []string
	if old := s.slices[nsName{m.GetNamespace(), m.GetName()}]; old != nil {
		keys = s.removeLocked(old, nil)
	}
	subs := s.subscribersLocked()
	s.mu.Unlock()
	notify(subs, keys)
	return nil
}

// Replace implements cache.ReflectorStore: the views of list replace every stored one.
func (s *sliceStore) Replace(list []any, _ string) error {
	views := make(map[nsName]*endpoints.Slice, len(list))
	for _, obj := range list {
		es, ok := obj.(*discoveryv1.EndpointSlice)
		if !ok {
			return fmt.Errorf("replace endpointslices: unexpected %T", obj)
		}
		views[nsName{es.Namespace, es.Name}] = endpoints.FromEndpointSlice(es)
	}
	s.mu.Lock()
	var keys []string
	for k, old := range s.slices {
		if views[k] == nil {
			keys = s.removeLocked(old, keys)
		}
	}
	for _, v := range views {
		keys = s.putLocked(v, keys)
	}
	s.synced = true
	subs := s.subscribersLocked()
	s.mu.Unlock()
	notify(subs, keys)
	return nil
}

// Resync implements cache.ReflectorStore (nothing to do: subscribers get changes only).
func (s *sliceStore) Resync() error { return nil }

// putLocked stores v in place of the view of the same slice and appends to keys the keys
// of the Services whose slices changed (none when the resourceVersion is the same).
func (s *sliceStore) putLocked(v *endpoints.Slice, keys []string) []string {
	k := nsName{v.Namespace, v.Name}
	if old := s.slices[k]; old != nil {
		if old.ResourceVersion != "" && old.ResourceVersion == v.ResourceVersion {
			return keys
		}
		keys = s.removeLocked(old, keys)
	}
	s.slices[k] = v
	if v.Service != "" {
		svc := nsName{v.Namespace, v.Service}
		s.byService[svc] = append(s.byService[svc], v)
		keys = append(keys, v.Namespace+"/"+v.Service)
	}
	for _, ip := range localIPs(v, s.node) {
		if l := s.byLocalIP[ip]; !slices.Contains(l, v) {
			s.byLocalIP[ip] = append(l, v)
		}
	}
	return keys
}

// removeLocked removes the stored view v and appends its Service's key to keys.
func (s *sliceStore) removeLocked(v *endpoints.Slice, keys []string) []string {
	delete(s.slices, nsName{v.Namespace, v.Name})
	if v.Service != "" {
		svc := nsName{v.Namespace, v.Service}
		if l := without(s.byService[svc], v); len(l) > 0 {
			s.byService[svc] = l
		} else {
			delete(s.byService, svc)
		}
		keys = append(keys, v.Namespace+"/"+v.Service)
	}
	for _, ip := range localIPs(v, s.node) {
		if l := without(s.byLocalIP[ip], v); len(l) > 0 {
			s.byLocalIP[ip] = l
		} else {
			delete(s.byLocalIP, ip)
		}
	}
	return keys
}

// without returns l without v, in a new array (readers may hold the old one).
func without(l []*endpoints.Slice, v *endpoints.Slice) []*endpoints.Slice {
	out := make([]*endpoints.Slice, 0, len(l))
	for _, x := range l {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}

func (s *sliceStore) subscribersLocked() []func(string) {
	out := make([]func(string), 0, len(s.subs))
	for _, f := range s.subs {
		out = append(out, f)
	}
	return out
}

func notify(subs []func(string), keys []string) {
	if len(keys) == 0 {
		return
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	for _, f := range subs {
		for _, k := range keys {
			f(k)
		}
	}
}

// subscribe calls enqueue with the key of every Service whose slices change, and at once
// with the key of every Service with a stored slice (as an informer handler added late
// receives the cached objects). The returned function ends the subscription.
func (s *sliceStore) subscribe(enqueue func(key string)) (remove func()) {
	s.mu.Lock()
	id := s.nextSub
	s.nextSub++
	s.subs[id] = enqueue
	keys := make([]string, 0, len(s.byService))
	for k := range s.byService {
		keys = append(keys, k.namespace+"/"+k.name)
	}
	s.mu.Unlock()
	for _, k := range keys {
		enqueue(k)
	}
	return func() {
		s.mu.Lock()
		delete(s.subs, id)
		s.mu.Unlock()
	}
}

// hasSynced reports whether the first list was stored.
func (s *sliceStore) hasSynced() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.synced
}

// forService returns the views of the slices of Service namespace/name (a new array).
func (s *sliceStore) forService(namespace, name string) []*endpoints.Slice {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.byService[nsName{namespace, name}])
}

// servicesForLocalIP returns the keys of the Services with an endpoint on this node at ip.
func (s *sliceStore) servicesForLocalIP(ip netip.Addr) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []string
	for _, v := range s.byLocalIP[ip.Unmap()] {
		if v.Service == "" {
			continue
		}
		if k := v.Namespace + "/" + v.Service; !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// localIPs returns the distinct addresses (unmapped) of the endpoints of v on node.
func localIPs(v *endpoints.Slice, node string) []netip.Addr {
	var out []netip.Addr
	for i := range v.Endpoints {
		ep := &v.Endpoints[i]
		if ep.NodeName != node {
			continue
		}
		for _, ip := range ep.Addresses {
			if ip.IsValid() && !slices.Contains(out, ip.Unmap()) {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}
