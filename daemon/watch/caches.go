package watch

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
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
	"k8s.io/client-go/tools/cache"

	"github.com/bgplb/bgplb/daemon/eligibility/endpoints"
)

// AllServices, as a Triggers key, enqueues the key of every Service in the cache.
const AllServices = "*"

// Index names of the EndpointSlice informer (whose store holds *endpoints.Slice views).
const (
	indexService = "service" // "<namespace>/<service>" -> slices
	indexLocalIP = "localIP" // IP of an endpoint on this node -> slices
)

// Options configures NewCaches.
type Options struct {
	// NodeName is this node; the Node informer watches only it (until
	// EnableLeaderCaches) and the local-IP index covers only its endpoints.
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
	opts Options
	kube informers.SharedInformerFactory
	node informers.SharedInformerFactory // this node's Node only
	// slices is not in a factory: its store holds *endpoints.Slice views, which no
	// EndpointSlice lister of the factory may ever be handed.
	secrets informers.SharedInformerFactory
	crd     *crdCaches

	services cache.SharedIndexInformer
	slices   cache.SharedIndexInformer
	nodes    cache.SharedIndexInformer
	secretsI cache.SharedIndexInformer
	nsI      cache.SharedIndexInformer

	Services corelisters.ServiceLister
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

	// Services and EndpointSlices are never listed by namespace: their informers get no
	// namespace index; the listers' namespace List would fall back to a scan.
	c.services = c.kube.InformerFor(&corev1.Service{}, func(cs kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
		return coreinformers.NewServiceInformer(cs, metav1.NamespaceAll, resync, cache.Indexers{})
	})
	c.Services = corelisters.NewServiceLister(c.services.GetIndexer())
	// EndpointSlices are cached as their typed view (package endpoints): the API objects
	// of 100k endpoints would be most of the daemon's heap.
	c.slices = discoveryinformers.NewEndpointSliceInformer(kube, metav1.NamespaceAll, opts.Resync, cache.Indexers{
		indexService: sliceServiceIndex,
		indexLocalIP: localIPIndex(opts.NodeName),
	})
	if err := c.slices.SetTransform(sliceView); err != nil {
		return nil, fmt.Errorf("set endpointslice transform: %w", err)
	}

	nsi := c.kube.Core().V1().Namespaces()
	c.nsI = nsi.Informer()
	c.Namespaces = nsi.Lister()

	n := c.node.Core().V1().Nodes()
	c.nodes = n.Informer()
	c.Nodes = n.Lister()
	for name, inf := range map[string]cache.SharedIndexInformer{"service": c.services, "namespace": c.nsI, "node": c.nodes} {
		if err := inf.SetTransform(TrimObject); err != nil {
			return nil, fmt.Errorf("set %s transform: %w", name, err)
		}
	}

	if opts.SecretNamespace != "" {
		c.secrets = informers.NewSharedInformerFactoryWithOptions(kube, opts.Resync, informers.WithNamespace(opts.SecretNamespace))
		s := c.secrets.Core().V1().Secrets()
		c.secretsI = s.Informer()
		c.Secrets = s.Lister().Secrets(opts.SecretNamespace)
		if err := c.secretsI.SetTransform(TrimObject); err != nil {
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
	go c.slices.RunWithContext(ctx)
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

// SlicesForService returns the views of the EndpointSlices of Service namespace/name (any
// family). They are shared: never mutate them.
func (c *Caches) SlicesForService(namespace, name string) ([]*endpoints.Slice, error) {
	key := namespace + "/" + name
	objs, err := c.slices.GetIndexer().ByIndex(indexService, key)
	if err != nil {
		return nil, fmt.Errorf("list endpointslices of %s: %w", key, err)
	}
	var out []*endpoints.Slice
	for _, o := range objs {
		if s, ok := o.(*endpoints.Slice); ok {
			out = append(out, s)
		}
	}
	return out, nil
}

// ServicesForLocalIP returns the keys of Services with an endpoint on this node at ip.
func (c *Caches) ServicesForLocalIP(ip netip.Addr) []string {
	ip = ip.Unmap()
	objs, err := c.slices.GetIndexer().ByIndex(indexLocalIP, ip.String())
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, o := range objs {
		s, ok := o.(*endpoints.Slice)
		if !ok {
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

// sliceView is the EndpointSlice informer's transform: the typed view replaces the API
// object (idempotent: a view passes through).
func sliceView(obj any) (any, error) {
	if s, ok := obj.(*discoveryv1.EndpointSlice); ok {
		return endpoints.FromEndpointSlice(s), nil
	}
	return obj, nil
}

// sliceServiceKey maps an EndpointSlice to its Service key via its
// kubernetes.io/service-name label.
func sliceServiceKey(s *endpoints.Slice) (string, bool) {
	if s.Service == "" {
		return "", false
	}
	return s.Namespace + "/" + s.Service, true
}

func sliceServiceIndex(obj any) ([]string, error) {
	s, ok := obj.(*endpoints.Slice)
	if !ok {
		return nil, nil
	}
	if k, ok := sliceServiceKey(s); ok {
		return []string{k}, nil
	}
	return nil, nil
}

func localIPIndex(node string) cache.IndexFunc {
	return func(obj any) ([]string, error) {
		s, ok := obj.(*endpoints.Slice)
		if !ok {
			return nil, nil
		}
		var out []string
		for _, ip := range localIPs(s, node) {
			if v := ip.String(); !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
		return out, nil
	}
}

// localIPs returns the addresses of the slice's endpoints on node (unmapped).
func localIPs(s *endpoints.Slice, node string) []netip.Addr {
	var out []netip.Addr
	for i := range s.Endpoints {
		ep := &s.Endpoints[i]
		if ep.NodeName != node {
			continue
		}
		for _, ip := range ep.Addresses {
			if ip.IsValid() {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}

// keptAnnotationPrefixes are the annotations the caches keep: bgplb's own and the
// Service annotations of the load-balancer contract that kube-proxy also honours.
var keptAnnotationPrefixes = []string{"bgplb.io/", "service.beta.kubernetes.io/"}

// TrimObject is the transform of every informer: it drops managedFields and foreign
// annotations (kubectl's last-applied configuration can be larger than the object) and
// nothing else, so every lister returns the API object as its readers expect it. A
// consumer that needs less (a projection) builds its own typed view from the listers.
func TrimObject(obj any) (any, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return obj, nil
	}
	m.SetManagedFields(nil)
	var kept map[string]string
	for k, v := range m.GetAnnotations() {
		for _, p := range keptAnnotationPrefixes {
			if strings.HasPrefix(k, p) {
				if kept == nil {
					kept = map[string]string{}
				}
				kept[k] = v
				break
			}
		}
	}
	m.SetAnnotations(kept)
	return obj, nil
}

// NamespaceLabels returns the labels of namespace (nil when unknown).
func (c *Caches) NamespaceLabels(namespace string) labels.Set {
	ns, err := c.Namespaces.Get(namespace)
	if err != nil {
		return nil
	}
	return labels.Set(ns.Labels)
}
