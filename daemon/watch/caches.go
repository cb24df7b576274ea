package watch

import (
	"context"
	"fmt"
	"hash/maphash"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	discoveryinformers "k8s.io/client-go/informers/discovery/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
)

// AllServices, as a Triggers key, enqueues the key of every Service in the cache.
const AllServices = "*"

// Index names of the EndpointSlice informer.
const (
	indexService = "service" // bucket("<namespace>/<service>") -> slices
	indexLocalIP = "localIP" // bucket(IP of an endpoint on this node) -> slices
)

// Options configures NewCaches.
type Options struct {
	// NodeName is this node; the Node informer watches only it and the local-IP index
	// covers only its endpoints.
	NodeName string
	// SecretNamespace is the namespace whose Secrets (peer passwords) are watched; empty
	// disables the Secret informer.
	SecretNamespace string
	// Resync is the informers' resync period (0 = none).
	Resync time.Duration
}

// Caches holds the daemon's shared informers and listers. Read listers only after
// WaitForCacheSync returned true; never mutate what they return.
type Caches struct {
	opts    Options
	kube    informers.SharedInformerFactory
	node    informers.SharedInformerFactory
	secrets informers.SharedInformerFactory
	crd     *crdCaches

	services cache.SharedIndexInformer
	slices   cache.SharedIndexInformer
	nodes    cache.SharedIndexInformer
	secretsI cache.SharedIndexInformer
	nsI      cache.SharedIndexInformer

	Services corelisters.ServiceLister
	Slices   discoverylisters.EndpointSliceLister
	Nodes    corelisters.NodeLister
	Secrets  corelisters.SecretNamespaceLister // nil when SecretNamespace is empty
	// Namespaces (labels only matter: pool namespaceSelectors).
	Namespaces corelisters.NamespaceLister
}

// NewCaches creates (but does not start) the informers.
func NewCaches(kube kubernetes.Interface, crd CRDClient, opts Options) (*Caches, error) {
	if opts.NodeName == "" {
		return nil, fmt.Errorf("create caches: empty node name")
	}
	c := &Caches{opts: opts}
	c.kube = informers.NewSharedInformerFactory(kube, opts.Resync)
	c.node = informers.NewSharedInformerFactoryWithOptions(kube, opts.Resync,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", opts.NodeName).String()
		}))

	vocab := newVocabulary() // shared by the Service and EndpointSlice transforms
	// Services and EndpointSlices are never listed by namespace: their informers get no
	// namespace index (the factory's default keeps a set of every key, ~0.5 MB each at
	// 10k objects); the listers' namespace List would fall back to a scan (and log a
	// warning).
	c.services = c.kube.InformerFor(&corev1.Service{}, func(cs kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
		return coreinformers.NewServiceInformer(cs, metav1.NamespaceAll, resync, cache.Indexers{})
	})
	c.Services = corelisters.NewServiceLister(c.services.GetIndexer())
	if err := c.services.SetTransform(trimService(newAnnotationInterner(), vocab)); err != nil {
		return nil, fmt.Errorf("set service transform: %w", err)
	}

	c.slices = c.kube.InformerFor(&discoveryv1.EndpointSlice{}, func(cs kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
		return discoveryinformers.NewEndpointSliceInformer(cs, metav1.NamespaceAll, resync, cache.Indexers{})
	})
	c.Slices = discoverylisters.NewEndpointSliceLister(c.slices.GetIndexer())
	if err := c.slices.SetTransform(trimSlice(opts.NodeName, vocab)); err != nil {
		return nil, fmt.Errorf("set endpointslice transform: %w", err)
	}
	if err := c.slices.AddIndexers(cache.Indexers{
		indexService: sliceServiceIndex,
		indexLocalIP: localIPIndex(opts.NodeName),
	}); err != nil {
		return nil, fmt.Errorf("add endpointslice indexers: %w", err)
	}

	nsi := c.kube.Core().V1().Namespaces()
	c.nsI = nsi.Informer()
	c.Namespaces = nsi.Lister()
	if err := c.nsI.SetTransform(trimNamespace); err != nil {
		return nil, fmt.Errorf("set namespace transform: %w", err)
	}

	n := c.node.Core().V1().Nodes()
	c.nodes = n.Informer()
	c.Nodes = n.Lister()
	if err := c.nodes.SetTransform(trimNode); err != nil {
		return nil, fmt.Errorf("set node transform: %w", err)
	}

	if opts.SecretNamespace != "" {
		c.secrets = informers.NewSharedInformerFactoryWithOptions(kube, opts.Resync, informers.WithNamespace(opts.SecretNamespace))
		s := c.secrets.Core().V1().Secrets()
		c.secretsI = s.Informer()
		c.Secrets = s.Lister().Secrets(opts.SecretNamespace)
		if err := c.secretsI.SetTransform(trimMeta); err != nil {
			return nil, fmt.Errorf("set secret transform: %w", err)
		}
	}
	if crd != nil {
		cc, err := newCRDCaches(crd, opts.Resync)
		if err != nil {
			return nil, err
		}
		c.crd = cc
	}
	return c, nil
}

// Start starts every informer; they stop when ctx is done.
func (c *Caches) Start(ctx context.Context) {
	c.kube.Start(ctx.Done())
	c.node.Start(ctx.Done())
	if c.secrets != nil {
		c.secrets.Start(ctx.Done())
	}
	if c.crd != nil {
		c.crd.start(ctx)
	}
}

// WaitForCacheSync blocks until every informer has synced or ctx is done.
func (c *Caches) WaitForCacheSync(ctx context.Context) bool {
	syncs := []cache.InformerSynced{c.services.HasSynced, c.slices.HasSynced, c.nodes.HasSynced, c.nsI.HasSynced}
	if c.secretsI != nil {
		syncs = append(syncs, c.secretsI.HasSynced)
	}
	if c.crd != nil {
		syncs = append(syncs, c.crd.synced()...)
	}
	return cache.WaitForCacheSync(ctx.Done(), syncs...)
}

// SlicesForService returns the EndpointSlices of Service namespace/name (any family).
func (c *Caches) SlicesForService(namespace, name string) ([]*discoveryv1.EndpointSlice, error) {
	key := namespace + "/" + name
	objs, err := c.slices.GetIndexer().ByIndex(indexService, bucket(key))
	if err != nil {
		return nil, fmt.Errorf("list endpointslices of %s: %w", key, err)
	}
	var out []*discoveryv1.EndpointSlice
	for _, o := range objs {
		if s, ok := o.(*discoveryv1.EndpointSlice); ok {
			if k, ok := sliceServiceKey(s); ok && k == key {
				out = append(out, s)
			}
		}
	}
	return out, nil
}

// ServicesForLocalIP returns the keys of Services with an endpoint on this node at ip.
func (c *Caches) ServicesForLocalIP(ip netip.Addr) []string {
	ip = ip.Unmap()
	objs, err := c.slices.GetIndexer().ByIndex(indexLocalIP, bucket(ip.String()))
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, o := range objs {
		s, ok := o.(*discoveryv1.EndpointSlice)
		if !ok || !slices.Contains(localIPs(s, c.opts.NodeName), ip) {
			continue
		}
		if k, ok := sliceServiceKey(s); ok && !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// Node returns this node's object, or nil when it is not (yet) known.
func (c *Caches) Node() *corev1.Node {
	n, err := c.Nodes.Get(c.opts.NodeName)
	if err != nil {
		return nil
	}
	return n
}

// ServiceKeys returns the keys of every cached Service.
func (c *Caches) ServiceKeys() []string {
	svcs, err := c.Services.List(labels.Everything())
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(svcs))
	for _, s := range svcs {
		out = append(out, s.Namespace+"/"+s.Name)
	}
	return out
}

// sliceServiceKey maps an EndpointSlice to its Service key via its
// kubernetes.io/service-name label, or in the cache (see trimSlice) via the owner
// reference the transform made of it.
func sliceServiceKey(s *discoveryv1.EndpointSlice) (string, bool) {
	name := s.Labels[discoveryv1.LabelServiceName]
	if name == "" && len(s.OwnerReferences) == 1 && s.OwnerReferences[0] == serviceRef(s.OwnerReferences[0].Name) {
		name = s.OwnerReferences[0].Name
	}
	if name == "" {
		return "", false
	}
	return s.Namespace + "/" + name, true
}

// serviceRef is the owner reference trimSlice gives a cached EndpointSlice of Service
// name. It has no UID, which every owner reference stored by the API server has.
func serviceRef(name string) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: "v1", Kind: "Service", Name: name}
}

func sliceServiceIndex(obj any) ([]string, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return nil, nil
	}
	if k, ok := sliceServiceKey(s); ok {
		return []string{bucket(k)}, nil
	}
	return nil, nil
}

// indexBuckets is how many values each EndpointSlice index has. client-go keeps a set
// (a Go map, ~300 bytes even with one key) per index value: one per Service and one per
// local endpoint IP cost ~3 and ~4 MB at 10k Services with 100k endpoints. The lookups
// only need an index to narrow the search: they filter the bucket's slices (~10 by
// Service, ~30 by local IP at that scale).
const indexBuckets = 1024

var (
	bucketSeed  = maphash.MakeSeed()
	bucketNames = func() []string {
		out := make([]string, indexBuckets)
		for i := range out {
			out[i] = strconv.Itoa(i)
		}
		return out
	}()
)

// bucket returns the index value of s (stable within the process).
func bucket(s string) string {
	return bucketNames[maphash.String(bucketSeed, s)%indexBuckets]
}

func localIPIndex(node string) cache.IndexFunc {
	return func(obj any) ([]string, error) {
		s, ok := obj.(*discoveryv1.EndpointSlice)
		if !ok {
			return nil, nil
		}
		var out []string
		for _, ip := range localIPs(s, node) {
			if b := bucket(ip.String()); !slices.Contains(out, b) {
				out = append(out, b)
			}
		}
		return out, nil
	}
}

// localIPs returns the addresses of the slice's endpoints on node (unmapped).
func localIPs(s *discoveryv1.EndpointSlice, node string) []netip.Addr {
	var out []netip.Addr
	for i := range s.Endpoints {
		ep := &s.Endpoints[i]
		if ep.NodeName == nil || *ep.NodeName != node {
			continue
		}
		for _, a := range ep.Addresses {
			if ip, err := netip.ParseAddr(a); err == nil {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}

// trimMeta drops managedFields (the bulk of most cached objects).
func trimMeta(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// trimService returns the Service transform: it keeps only the bgplb.io annotations and
// the legacy source-ranges annotation (others, like kubectl's last-applied configuration, can be large), one map shared by
// all Services with the same ones (see annotationInterner), drops managedFields and
// shares repeated strings through v.
func trimService(in *annotationInterner, v *vocabulary) cache.TransformFunc {
	return func(obj any) (any, error) {
		s, ok := obj.(*corev1.Service)
		if !ok {
			return obj, nil
		}
		s.ManagedFields = nil
		kept := keepPrefixed(s.Annotations, "bgplb.io/")
		if r, ok := s.Annotations[corev1.AnnotationLoadBalancerSourceRangesKey]; ok {
			if kept == nil {
				kept = map[string]string{}
			}
			kept[corev1.AnnotationLoadBalancerSourceRangesKey] = r // servicespec reads it
		}
		s.Annotations = in.intern(kept)
		v.service(s)
		return s, nil
	}
}

// trimSlice returns the EndpointSlice transform for node: it drops managedFields,
// annotations, labels (keeping the Service's name, see sliceServiceKey) and per-endpoint
// fields no consumer reads, and compacts the endpoints of
// other nodes. Their only reader is eligibility.SelectEndpoints, which ORs their
// conditions (ready somewhere, serving somewhere); so of the endpoints elsewhere the
// slice keeps the first ready one and the first serving-but-not-ready one. With 100k
// endpoints over many nodes each daemon then caches its own endpoints plus at most
// two per slice. Condition and nodeName pointers are shared between endpoints (cached
// objects are never mutated); repeated strings are shared through v.
func trimSlice(node string, v *vocabulary) cache.TransformFunc {
	nodePtr := &node
	truePtr, falsePtr := new(bool), new(bool)
	*truePtr = true
	shared := func(b *bool) *bool {
		switch {
		case b == nil:
			return nil
		case *b:
			return truePtr
		default:
			return falsePtr
		}
	}
	return func(obj any) (any, error) {
		s, ok := obj.(*discoveryv1.EndpointSlice)
		if !ok {
			return obj, nil
		}
		s.ManagedFields = nil
		s.Annotations = nil
		s.GenerateName = ""
		// Only the kubernetes.io/service-name label is read, but a map costs ~340 bytes
		// even with one entry (and the EndpointSlice controller copies the Service's
		// labels too): the Service's name moves into a single owner reference (80 bytes)
		// instead; see sliceServiceKey. The real owner references go (~200 bytes).
		s.OwnerReferences = nil
		if name := s.Labels[discoveryv1.LabelServiceName]; name != "" {
			s.OwnerReferences = []metav1.OwnerReference{serviceRef(name)}
		}
		s.Labels = nil
		kept := s.Endpoints[:0]
		var readyElsewhere, servingElsewhere bool
		for i := range s.Endpoints {
			ep := s.Endpoints[i]
			ep.DeprecatedTopology = nil
			ep.Hints = nil
			ep.Hostname = nil
			if ep.TargetRef != nil {
				ep.TargetRef.ResourceVersion = ""
				ep.TargetRef.UID = ""
				ep.TargetRef.APIVersion = ""
			}
			ep.Conditions = discoveryv1.EndpointConditions{Ready: shared(ep.Conditions.Ready),
				Serving: shared(ep.Conditions.Serving), Terminating: shared(ep.Conditions.Terminating)}
			if node != "" && ep.NodeName != nil && *ep.NodeName == node {
				ep.NodeName = nodePtr
				kept = append(kept, ep)
				continue
			}
			if len(ep.Addresses) == 0 {
				continue // SelectEndpoints skips it
			}
			if _, err := netip.ParseAddr(ep.Addresses[0]); err != nil {
				continue // likewise
			}
			ready := ep.Conditions.Ready == nil || *ep.Conditions.Ready
			serving := ready || (ep.Conditions.Serving != nil && *ep.Conditions.Serving)
			switch {
			case ready && !readyElsewhere:
				readyElsewhere = true
			case !ready && serving && !servingElsewhere:
				servingElsewhere = true
			default:
				continue // adds nothing to what is kept
			}
			ep.Addresses = ep.Addresses[:1]
			ep.TargetRef, ep.Zone = nil, nil
			kept = append(kept, ep)
		}
		for i := range kept {
			if kept[i].NodeName != nodePtr {
				kept[i].NodeName = sharedPtr(v, kept[i].NodeName)
			}
		}
		// Release the dropped endpoints' memory: copy into a right-sized array.
		s.Endpoints = append([]discoveryv1.Endpoint(nil), kept...)
		v.endpointSlice(s)
		return s, nil
	}
}

// trimNamespace keeps only name and labels.
func trimNamespace(obj any) (any, error) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return obj, nil
	}
	ns.ManagedFields = nil
	ns.Annotations = nil
	ns.Spec = corev1.NamespaceSpec{}
	return ns, nil
}

// NamespaceLabels returns the labels of namespace (nil when unknown).
func (c *Caches) NamespaceLabels(namespace string) labels.Set {
	ns, err := c.Namespaces.Get(namespace)
	if err != nil {
		return nil
	}
	return labels.Set(ns.Labels)
}

// trimNode keeps labels, addresses, conditions, podCIDRs and taints.
func trimNode(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	n.ManagedFields = nil
	n.Annotations = nil
	n.Status.Images = nil
	n.Status.VolumesInUse = nil
	n.Status.VolumesAttached = nil
	return n, nil
}

func keepPrefixed(m map[string]string, prefix string) map[string]string {
	var out map[string]string
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}
