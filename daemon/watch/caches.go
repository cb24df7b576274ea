package watch

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/bgplb/bgplb/daemon/eligibility/endpoints"
)

// AllServices, as a Triggers key, enqueues the key of every Service in the cache.
const AllServices = "*"

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
	opts    Options
	kube    informers.SharedInformerFactory
	node    informers.SharedInformerFactory // this node's Node only
	secrets informers.SharedInformerFactory
	crd     *crdCaches

	services cache.SharedIndexInformer
	// EndpointSlices are not in a factory: a Reflector stores their typed views
	// (endpoints.Slice) in slices; no EndpointSlice lister exists.
	slices    *sliceStore
	sliceRefl *cache.Reflector
	nodes     cache.SharedIndexInformer
	secretsI  cache.SharedIndexInformer
	nsI       cache.SharedIndexInformer

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
	// EndpointSlices are cached as their typed views (package endpoints): the API objects
	// of 100k endpoints would be most of the daemon's heap.
	c.slices = newSliceStore(opts.NodeName)
	c.sliceRefl = newSliceReflector(kube, c.slices, opts.Resync)

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
	go c.sliceRefl.RunWithContext(ctx)
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
	syncs := []cache.InformerSynced{c.services.HasSynced, c.slices.hasSynced, c.nodes.HasSynced, c.nsI.HasSynced}
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
	return c.slices.forService(namespace, name), nil
}

// ServicesForLocalIP returns the keys of Services with an endpoint on this node at ip.
func (c *Caches) ServicesForLocalIP(ip netip.Addr) []string {
	return c.slices.servicesForLocalIP(ip)
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

// keptAnnotation reports whether the caches keep an annotation: bgplb's own (prefix
// bgplb.io/) and the one annotation of the load-balancer contract the daemon reads,
// kube-proxy's legacy service.beta.kubernetes.io/load-balancer-source-ranges
// (daemon/servicespec). Cloud providers' service.beta.kubernetes.io/* annotations and
// kubectl's last-applied configuration (which can be larger than the object) go.
func keptAnnotation(k string) bool {
	return strings.HasPrefix(k, "bgplb.io/") || k == corev1.AnnotationLoadBalancerSourceRangesKey
}

// TrimObject is the transform of every informer: it drops managedFields (one entry per
// writer: the scale benchmark's 10k Services, with their creator and bgplbd's status
// writes, hold 3.1 KB each, 30 MiB of heap in all) and the annotations
// keptAnnotation does not keep, and nothing else, so every lister returns the API
// object as its readers expect it. A consumer that needs less (a projection) builds
// its own typed view from the listers.
func TrimObject(obj any) (any, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return obj, nil
	}
	m.SetManagedFields(nil)
	var kept map[string]string
	for k, v := range m.GetAnnotations() {
		if keptAnnotation(k) {
			if kept == nil {
				kept = map[string]string{}
			}
			kept[k] = v
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
