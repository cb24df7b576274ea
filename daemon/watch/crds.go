package watch

import (
	"context"
	"fmt"
	"sync"
	"time"

	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/bgplb/bgplb/daemon/client/clientset/versioned"
	"github.com/bgplb/bgplb/daemon/client/informers/externalversions"
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

	// BGPNodeStates (and every Node) are only read by the LB-IPAM leader (the Announced
	// aggregator), so their informers are created by EnableLeaderCaches, not on every node.
	mu         sync.Mutex
	runCtx     context.Context // the context start got; nil before start
	nodeStates cache.SharedIndexInformer
	allNodes   cache.SharedIndexInformer
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
		if err := inf.SetTransform(TrimObject); err != nil {
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

// EnableLeaderCaches creates and starts the informers only the LB-IPAM leader needs,
// every BGPNodeState and every Node (once; later calls return at once), and waits until
// they have synced or ctx is done. Call it after Start. The informers then run as long as
// the caches do, also after ctx ends.
func (c *Caches) EnableLeaderCaches(ctx context.Context) error {
	if c.crd == nil {
		return nil
	}
	cc := c.crd
	cc.mu.Lock()
	if cc.nodeStates == nil {
		if cc.runCtx == nil {
			cc.mu.Unlock()
			return fmt.Errorf("enable leader informers: caches not started")
		}
		states := cc.factory.Bgplb().V1alpha1().BGPNodeStates().Informer()
		nodes := c.kube.Core().V1().Nodes().Informer()
		for name, inf := range map[string]cache.SharedIndexInformer{"bgpnodestate": states, "node": nodes} {
			if err := inf.SetTransform(TrimObject); err != nil {
				cc.mu.Unlock()
				return fmt.Errorf("set %s transform: %w", name, err)
			}
		}
		cc.nodeStates, cc.allNodes = states, nodes
		cc.factory.Start(cc.runCtx.Done()) // starts only the informers just added
		c.kube.Start(cc.runCtx.Done())
	}
	synced := []cache.InformerSynced{cc.nodeStates.HasSynced, cc.allNodes.HasSynced}
	cc.mu.Unlock()
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return fmt.Errorf("sync leader informers: %w", context.Cause(ctx))
	}
	return nil
}

func (c *crdCaches) nodeStateInformer() cache.SharedIndexInformer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodeStates
}

func (c *crdCaches) allNodesInformer() cache.SharedIndexInformer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.allNodes
}

// AllNodes returns the lister of every Node: nil without a CRD client or before
// EnableLeaderCaches.
func (c *Caches) AllNodes() corelisters.NodeLister {
	if c.crd == nil {
		return nil
	}
	if inf := c.crd.allNodesInformer(); inf != nil {
		return corelisters.NewNodeLister(inf.GetIndexer())
	}
	return nil
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

// NodeStates returns the BGPNodeState lister: nil without a CRD client or before
// EnableLeaderCaches.
func (c *Caches) NodeStates() listers.BGPNodeStateLister {
	if c.crd == nil {
		return nil
	}
	if inf := c.crd.nodeStateInformer(); inf != nil {
		return listers.NewBGPNodeStateLister(inf.GetIndexer())
	}
	return nil
}
