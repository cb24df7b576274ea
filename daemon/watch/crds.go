package watch

import (
	"context"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/client/clientset/versioned"
	"github.com/bgplb/bgplb/daemon/client/informers/externalversions"
	bgplbinformers "github.com/bgplb/bgplb/daemon/client/informers/externalversions/bgplb/v1alpha1"
	listers "github.com/bgplb/bgplb/daemon/client/listers/bgplb/v1alpha1"
)

// CRDClient is the generated bgplb.io clientset.
type CRDClient = versioned.Interface

type crdCaches struct {
	factory externalversions.SharedInformerFactory
	pools   cache.SharedIndexInformer
	peers   cache.SharedIndexInformer
	adverts cache.SharedIndexInformer

	poolLister   listers.LoadBalancerIPPoolLister
	peerLister   listers.BGPPeerLister
	advertLister listers.BGPAdvertisementLister

	// BGPNodeStates are only read by the LB-IPAM leader (the Announced aggregator); at
	// 10k Services each node's object lists ~10k prefixes, so the informer is created
	// by EnableNodeStates, not on every node, with the transform its reader needs.
	mu         sync.Mutex
	runCtx     context.Context // the context start got; nil before start
	nodeStates cache.SharedIndexInformer
}

func newCRDCaches(client CRDClient, resync time.Duration) (*crdCaches, error) {
	f := externalversions.NewSharedInformerFactory(client, resync)
	v := f.Bgplb().V1alpha1()
	c := &crdCaches{
		factory:      f,
		pools:        v.LoadBalancerIPPools().Informer(),
		peers:        v.BGPPeers().Informer(),
		adverts:      v.BGPAdvertisements().Informer(),
		poolLister:   v.LoadBalancerIPPools().Lister(),
		peerLister:   v.BGPPeers().Lister(),
		advertLister: v.BGPAdvertisements().Lister(),
	}
	for name, inf := range map[string]cache.SharedIndexInformer{
		"loadbalancerippool": c.pools, "bgppeer": c.peers, "bgpadvertisement": c.adverts,
	} {
		if err := inf.SetTransform(trimMeta); err != nil {
			return nil, fmt.Errorf("set %s transform: %w", name, err)
		}
	}
	return c, nil
}

func (c *crdCaches) start(ctx context.Context) {
	c.mu.Lock()
	c.runCtx = ctx
	c.mu.Unlock()
	c.factory.Start(ctx.Done())
}

func (c *crdCaches) synced() []cache.InformerSynced {
	return []cache.InformerSynced{c.pools.HasSynced, c.peers.HasSynced, c.adverts.HasSynced}
}

// EnableNodeStates creates and starts the BGPNodeState informer (once; later calls
// return at once) and waits until it has synced or ctx is done. Call it after Start.
// The informer then runs as long as the caches do, also after ctx ends. Its store keeps
// what transform returns for each object (the leader keeps a summary, see
// status.NodeSummaryTransform); nil keeps the object without managedFields.
func (c *Caches) EnableNodeStates(ctx context.Context, transform cache.TransformFunc) error {
	if c.crd == nil {
		return nil
	}
	cc := c.crd
	cc.mu.Lock()
	inf := cc.nodeStates
	if inf == nil {
		if cc.runCtx == nil {
			cc.mu.Unlock()
			return fmt.Errorf("enable bgpnodestate informer: caches not started")
		}
		if transform == nil {
			transform = trimMeta
		}
		inf = cc.factory.InformerFor(&v1alpha1.BGPNodeState{}, func(client versioned.Interface, resync time.Duration) cache.SharedIndexInformer {
			return bgplbinformers.NewFilteredBGPNodeStateInformer(client, resync, cache.Indexers{}, shortWatch)
		})
		if err := inf.SetTransform(transform); err != nil {
			cc.mu.Unlock()
			return fmt.Errorf("set bgpnodestate transform: %w", err)
		}
		cc.nodeStates = inf
		cc.factory.Start(cc.runCtx.Done()) // starts only the informer just added
	}
	cc.mu.Unlock()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return fmt.Errorf("sync bgpnodestate informer: %w", context.Cause(ctx))
	}
	return nil
}

// nodeStateWatchTimeout bounds each BGPNodeState watch request. A watch decodes into
// buffers that grow to its largest event and live as long as the watch: at 10k prefixes
// a node's object is ~1 MB of JSON, and the leader's watch held ~2.5 MB of buffers for
// the 5-10 minutes client-go's reflector keeps a watch open. Ending it after a minute
// (the reflector resumes from the last resourceVersion; nothing is listed again) lets
// them go soon after the node states turn quiet.
const nodeStateWatchTimeout int64 = 60

// shortWatch caps the timeout of watch requests at nodeStateWatchTimeout.
func shortWatch(o *metav1.ListOptions) {
	if o.TimeoutSeconds != nil && *o.TimeoutSeconds > nodeStateWatchTimeout {
		t := nodeStateWatchTimeout
		o.TimeoutSeconds = &t
	}
}

func (c *crdCaches) nodeStateInformer() cache.SharedIndexInformer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodeStates
}

// Pools returns the LoadBalancerIPPool lister (nil without a CRD client).
func (c *Caches) Pools() listers.LoadBalancerIPPoolLister {
	if c.crd == nil {
		return nil
	}
	return c.crd.poolLister
}

// Peers returns the BGPPeer lister (nil without a CRD client).
func (c *Caches) Peers() listers.BGPPeerLister {
	if c.crd == nil {
		return nil
	}
	return c.crd.peerLister
}

// Advertisements returns the BGPAdvertisement lister (nil without a CRD client).
func (c *Caches) Advertisements() listers.BGPAdvertisementLister {
	if c.crd == nil {
		return nil
	}
	return c.crd.advertLister
}

// NodeStates returns the BGPNodeState informer's store, holding what the transform given
// to EnableNodeStates returned: nil without a CRD client or before EnableNodeStates.
func (c *Caches) NodeStates() cache.Store {
	if c.crd == nil {
		return nil
	}
	if inf := c.crd.nodeStateInformer(); inf != nil {
		return inf.GetStore()
	}
	return nil
}
