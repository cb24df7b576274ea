package registry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"k8s.io/klog/v2"

	"github.com/bgplb/bgplb/bpf"
	"github.com/bgplb/bgplb/daemon/registry/api"
)

// Handler is called after every change: deleted is false when ep was added or replaced,
// true when it was removed (ep is then the removed endpoint). Handlers run synchronously
// and in mutation order; they must be quick (enqueue work, don't do it) and must not call
// Register, Unregister or Rebuild (that would deadlock). Read methods are safe.
type Handler func(ep api.Endpoint, deleted bool)

// AttachedFunc reports whether the link pinned at linkPin is live, and its ifindex.
// The production implementation is bpf.PodAttached.
type AttachedFunc func(linkPin string) (attached bool, ifindex int, err error)

// Option configures a Registry.
type Option func(*Registry)

// WithAttachedFunc replaces bpf.PodAttached, for tests and for callers that check pins
// some other way.
func WithAttachedFunc(f AttachedFunc) Option {
	return func(r *Registry) { r.attached = f }
}

// Registry is the in-memory set of local endpoints. The zero value is not usable; call New.
type Registry struct {
	attached  AttachedFunc
	clientExe string                     // WithClientExecutable; "" accepts any root client
	routes    atomic.Pointer[RoutesFunc] // answers GET /v1/routes; nil: 404

	// writeMu serialises mutations together with their notifications, so handlers see
	// changes in order while readers (which take only mu) are never blocked by a handler.
	writeMu sync.Mutex

	mu        sync.RWMutex
	endpoints map[string]api.Endpoint        // Key() -> endpoint
	byIP      map[netip.Addr]map[string]bool // pod IP -> set of Key()
	byPod     map[string]map[string]bool     // "namespace/name" -> set of Key()
	handlers  map[int]Handler                // subscription id -> handler
	nextSubID int
}

// New returns an empty registry.
func New(opts ...Option) *Registry {
	r := &Registry{
		attached:  bpf.PodAttached,
		endpoints: map[string]api.Endpoint{},
		byIP:      map[netip.Addr]map[string]bool{},
		byPod:     map[string]map[string]bool{},
		handlers:  map[int]Handler{},
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// RoutesFunc returns the routes the node's speaker originates (bgplbctl status).
type RoutesFunc func(ctx context.Context) ([]api.Route, error)

// ServeRoutes makes the socket answer GET /v1/routes with fn.
func (r *Registry) ServeRoutes(fn RoutesFunc) { r.routes.Store(&fn) }

// Subscribe registers h for every later change and returns a function that cancels the
// subscription. Changes made before Subscribe are not replayed; call List after
// subscribing to get the current set.
func (r *Registry) Subscribe(h Handler) (cancel func()) {
	r.mu.Lock()
	id := r.nextSubID
	r.nextSubID++
	r.handlers[id] = h
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		delete(r.handlers, id)
		r.mu.Unlock()
	}
}

// ErrIPInUse is wrapped by Register's error when another live attachment holds one of
// the endpoint's IPs.
var ErrIPInUse = errors.New("IP registered by another live attachment")

// Register adds ep or replaces the endpoint with the same Key. Registering an identical
// endpoint again changes nothing and notifies nobody. An IP that another attachment
// (another Key) holds is taken over only when that attachment is gone (its link pin holds
// no live link) or was recorded as not datapath-ready; otherwise Register fails with
// ErrIPInUse, whatever the timestamps say (a client cannot win an IP by claiming a later
// Created).
func (r *Registry) Register(ctx context.Context, ep api.Endpoint) error {
	if err := ep.Validate(); err != nil {
		return fmt.Errorf("register endpoint: %w", err)
	}
	ep.IPs = slices.Clone(ep.IPs)
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	stale, err := r.holders(ep)
	if err != nil {
		return err
	}
	for _, old := range stale {
		if _, ok := r.remove(old.Key()); ok {
			klog.FromContext(ctx).V(2).Info("endpoint replaced: its IP was registered again", "endpoint", old.Key(),
				"by", ep.Key(), "ips", old.IPs, "reason", "staleHolder")
			r.notify(old, true)
		}
	}
	if !r.put(ep) {
		return nil
	}
	klog.FromContext(ctx).V(2).Info("endpoint registered", "endpoint", ep.Key(),
		"pod", klog.KRef(ep.PodNamespace, ep.PodName), "ips", ep.IPs, "hostIfName", ep.HostIfName)
	r.notify(ep, false)
	return nil
}

// holders returns the other attachments holding ep's IPs that may be replaced (gone, or
// not datapath-ready), or ErrIPInUse when one of them is live. Caller holds writeMu.
func (r *Registry) holders(ep api.Endpoint) ([]api.Endpoint, error) {
	r.mu.RLock()
	var others []api.Endpoint
	seen := map[string]bool{}
	for _, ip := range ep.IPs {
		for key := range r.byIP[ip.Unmap()] {
			if key != ep.Key() && !seen[key] {
				seen[key] = true
				others = append(others, r.endpoints[key])
			}
		}
	}
	r.mu.RUnlock()
	slices.SortFunc(others, func(a, b api.Endpoint) int { return cmp.Compare(a.Key(), b.Key()) })
	for _, o := range others {
		if !o.DatapathReady() {
			continue
		}
		live := true // without a way to check (tests), a holder is live
		if r.attached != nil {
			attached, _, err := r.attached(o.LinkPin)
			live = attached || err != nil // unknown: keep the holder
		}
		if live {
			return nil, fmt.Errorf("register endpoint %s: %w: %s holds %v", ep.Key(), ErrIPInUse, o.Key(), o.IPs)
		}
	}
	return others, nil
}

// Unregister removes (containerID, ifName). Removing an unknown endpoint is not an error.
func (r *Registry) Unregister(ctx context.Context, containerID, ifName string) {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	old, ok := r.remove(containerID + "/" + ifName)
	if !ok {
		return
	}
	klog.FromContext(ctx).V(2).Info("endpoint unregistered", "endpoint", old.Key(),
		"pod", klog.KRef(old.PodNamespace, old.PodName), "ips", old.IPs)
	r.notify(old, true)
}

// Get returns the endpoint (containerID, ifName).
func (r *Registry) Get(containerID, ifName string) (api.Endpoint, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ep, ok := r.endpoints[containerID+"/"+ifName]
	return cloneEndpoint(ep), ok
}

// List returns every endpoint, sorted by Key.
func (r *Registry) List() []api.Endpoint {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]api.Endpoint, 0, len(r.endpoints))
	for _, ep := range r.endpoints {
		out = append(out, cloneEndpoint(ep))
	}
	slices.SortFunc(out, func(a, b api.Endpoint) int { return cmp.Compare(a.Key(), b.Key()) })
	return out
}

// ByIP returns the endpoint that holds pod IP ip. If (transiently) several attachments
// claim the same IP, the most recently created one wins.
func (r *Registry) ByIP(ip netip.Addr) (api.Endpoint, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var (
		best  api.Endpoint
		found bool
	)
	for key := range r.byIP[ip.Unmap()] {
		ep := r.endpoints[key]
		if !found || ep.Created.After(best.Created) || (ep.Created.Equal(best.Created) && ep.Key() > best.Key()) {
			best, found = ep, true
		}
	}
	return cloneEndpoint(best), found
}

// Registered reports whether the CNI plugin registered an attachment of pod
// namespace/name that carries ip and that the datapath can serve
// (api.Endpoint.DatapathReady). An empty name, or an endpoint registered without pod
// metadata, never matches: the address alone does not prove whose pod it is. It
// implements eligibility.EndpointRegistry.
func (r *Registry) Registered(namespace, name string, ip netip.Addr) bool {
	ep, ok := r.match(namespace, name, ip)
	return ok && ep.DatapathReady()
}

// DatapathNotReady reports whether the endpoint that Registered looks for is registered
// but not datapath-ready, and why (api.Endpoint.DatapathError).
func (r *Registry) DatapathNotReady(namespace, name string, ip netip.Addr) (reason string, notReady bool) {
	ep, ok := r.match(namespace, name, ip)
	if !ok || ep.DatapathReady() {
		return "", false
	}
	return ep.DatapathError, true
}

// NotReady returns the registered endpoints that are not datapath-ready, sorted by Key.
func (r *Registry) NotReady() []api.Endpoint {
	var out []api.Endpoint
	for _, ep := range r.List() {
		if !ep.DatapathReady() {
			out = append(out, ep)
		}
	}
	return out
}

func (r *Registry) match(namespace, name string, ip netip.Addr) (api.Endpoint, bool) {
	ep, ok := r.ByIP(ip)
	if !ok {
		return ep, false
	}
	return ep, name != "" && ep.PodNamespace == namespace && ep.PodName == name
}

// ByPod returns the endpoints (one per attached interface) of pod namespace/name, sorted
// by Key. Endpoints registered without pod metadata are found only by IP.
func (r *Registry) ByPod(namespace, name string) []api.Endpoint {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []api.Endpoint
	for key := range r.byPod[namespace+"/"+name] {
		out = append(out, cloneEndpoint(r.endpoints[key]))
	}
	slices.SortFunc(out, func(a, b api.Endpoint) int { return cmp.Compare(a.Key(), b.Key()) })
	return out
}

// Len returns the number of endpoints.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.endpoints)
}

// RebuildResult says what Rebuild did with each record.
type RebuildResult struct {
	Adopted []api.Endpoint // records with a live link pin, now in the registry
	Dropped []api.Endpoint // records whose link pin is gone; removed from the store and the registry
}

// Rebuild makes the registry equal to the live records of store: records whose link pin
// holds a live link are adopted (registered), records whose pin is gone are dropped (their
// file is deleted and they are unregistered), and registered endpoints without a record
// are unregistered. It holds the store's exclusive lock (api.RecordStore.Lock) throughout,
// so no CNI ADD or DEL is half done while it looks: call it on start, before Serve, and
// periodically if you like (it repairs registrations that a CNI ADD could not deliver).
// Records whose state cannot be determined (unreadable file, pin check error) are left
// untouched and reported in the joined error; the rest of the rebuild still happens.
func (r *Registry) Rebuild(ctx context.Context, store api.RecordStore) (RebuildResult, error) {
	logger := klog.FromContext(ctx)
	var res RebuildResult
	unlock, err := store.Lock(true)
	if err != nil {
		return res, fmt.Errorf("rebuild endpoint registry: %w", err)
	}
	defer unlock()

	records, listErr := store.List()
	errs := []error{listErr}
	live := map[string]bool{}
	for _, rec := range records {
		if err := rec.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("rebuild from record: %w", err))
			continue
		}
		if !rec.DatapathReady() {
			// Recorded as not datapath-ready by the CNI plugin (no attachment to check):
			// kept, so the node keeps saying why it does not announce, until DEL or GC.
			live[rec.Key()] = true
			res.Adopted = append(res.Adopted, rec)
			continue
		}
		attached, ifindex, err := r.attached(rec.LinkPin)
		if err != nil {
			live[rec.Key()] = true // unknown: keep whatever we have
			errs = append(errs, fmt.Errorf("check link pin %s of endpoint %s: %w", rec.LinkPin, rec.Key(), err))
			continue
		}
		if !attached {
			if err := store.Delete(rec.ContainerID, rec.IfName); err != nil {
				errs = append(errs, err)
			}
			res.Dropped = append(res.Dropped, rec)
			logger.Info("dropped endpoint record without live link", "endpoint", rec.Key(),
				"pod", klog.KRef(rec.PodNamespace, rec.PodName), "linkPin", rec.LinkPin, "reason", "linkPinGone")
			continue
		}
		if ifindex != rec.HostIfIndex {
			logger.Info("endpoint link attached to a different ifindex than recorded", "endpoint", rec.Key(),
				"recordedIfIndex", rec.HostIfIndex, "linkIfIndex", ifindex)
		}
		live[rec.Key()] = true
		res.Adopted = append(res.Adopted, rec)
	}

	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	for _, ep := range res.Adopted {
		if r.put(ep) {
			logger.V(2).Info("endpoint adopted from record", "endpoint", ep.Key(), "reason", "recordWithLiveLink")
			r.notify(ep, false)
		}
	}
	r.mu.RLock()
	var stale []string
	for key := range r.endpoints {
		if !live[key] {
			stale = append(stale, key)
		}
	}
	r.mu.RUnlock()
	slices.Sort(stale)
	for _, key := range stale {
		if old, ok := r.remove(key); ok {
			logger.V(2).Info("endpoint unregistered on rebuild", "endpoint", key, "reason", "noRecord")
			r.notify(old, true)
		}
	}
	logger.Info("endpoint registry rebuilt", "recordsDir", store.Dir, "adopted", len(res.Adopted),
		"dropped", len(res.Dropped), "endpoints", r.Len())
	return res, errors.Join(errs...)
}

// put stores ep; it reports whether anything changed. Caller holds writeMu.
func (r *Registry) put(ep api.Endpoint) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := ep.Key()
	if old, ok := r.endpoints[key]; ok {
		if equalEndpoint(old, ep) {
			return false
		}
		r.unindex(old)
	}
	r.endpoints[key] = ep
	for _, ip := range ep.IPs {
		addKey(r.byIP, ip.Unmap(), key)
	}
	if ep.PodName != "" {
		addKey(r.byPod, ep.PodNamespace+"/"+ep.PodName, key)
	}
	return true
}

// remove deletes key and returns the removed endpoint. Caller holds writeMu.
func (r *Registry) remove(key string) (api.Endpoint, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old, ok := r.endpoints[key]
	if !ok {
		return api.Endpoint{}, false
	}
	delete(r.endpoints, key)
	r.unindex(old)
	return old, true
}

// unindex removes ep from the secondary indexes. Caller holds mu.
func (r *Registry) unindex(ep api.Endpoint) {
	key := ep.Key()
	for _, ip := range ep.IPs {
		delKey(r.byIP, ip.Unmap(), key)
	}
	if ep.PodName != "" {
		delKey(r.byPod, ep.PodNamespace+"/"+ep.PodName, key)
	}
}

// notify calls the handlers. Caller holds writeMu but not mu.
func (r *Registry) notify(ep api.Endpoint, deleted bool) {
	r.mu.RLock()
	ids := make([]int, 0, len(r.handlers))
	for id := range r.handlers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	hs := make([]Handler, 0, len(ids))
	for _, id := range ids {
		hs = append(hs, r.handlers[id])
	}
	r.mu.RUnlock()
	for _, h := range hs {
		h(cloneEndpoint(ep), deleted)
	}
}

func addKey[K comparable](m map[K]map[string]bool, k K, key string) {
	set := m[k]
	if set == nil {
		set = map[string]bool{}
		m[k] = set
	}
	set[key] = true
}

func delKey[K comparable](m map[K]map[string]bool, k K, key string) {
	if set := m[k]; set != nil {
		delete(set, key)
		if len(set) == 0 {
			delete(m, k)
		}
	}
}

func cloneEndpoint(ep api.Endpoint) api.Endpoint {
	ep.IPs = slices.Clone(ep.IPs)
	return ep
}

func equalEndpoint(a, b api.Endpoint) bool {
	return slices.Equal(a.IPs, b.IPs) && a.ContainerID == b.ContainerID && a.IfName == b.IfName &&
		a.Netns == b.Netns && a.PodNamespace == b.PodNamespace && a.PodName == b.PodName &&
		a.PodUID == b.PodUID && a.HostIfName == b.HostIfName && a.HostIfIndex == b.HostIfIndex &&
		a.LinkPin == b.LinkPin && a.Created.Equal(b.Created) && a.DatapathError == b.DatapathError
}
