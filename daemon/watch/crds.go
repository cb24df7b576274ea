package watch

import (
	"context"
	"fmt"
	"time"

	"k8s.io/client-go/tools/cache"

	"github.com/bgplb/bgplb/daemon/client/clientset/versioned"
	"github.com/bgplb/bgplb/daemon/client/informers/externalversions"
	listers "github.com/bgplb/bgplb/daemon/client/listers/bgplb/v1alpha1"
)

// CRDClient is the generated bgplb.io clientset.
type CRDClient = versioned.Interface

type crdCaches struct {
	factory    externalversions.SharedInformerFactory
	pools      cache.SharedIndexInformer
	peers      cache.SharedIndexInformer
	adverts    cache.SharedIndexInformer
	nodeStates cache.SharedIndexInformer

	poolLister      listers.LoadBalancerIPPoolLister
	peerLister      listers.BGPPeerLister
	advertLister    listers.BGPAdvertisementLister
	nodeStateLister listers.BGPNodeStateLister
}

func newCRDCaches(client CRDClient, resync time.Duration) (*crdCaches, error) {
	f := externalversions.NewSharedInformerFactory(client, resync)
	v := f.Bgplb().V1alpha1()
	c := &crdCaches{
		factory:         f,
		pools:           v.LoadBalancerIPPools().Informer(),
		peers:           v.BGPPeers().Informer(),
		adverts:         v.BGPAdvertisements().Informer(),
		nodeStates:      v.BGPNodeStates().Informer(),
		poolLister:      v.LoadBalancerIPPools().Lister(),
		peerLister:      v.BGPPeers().Lister(),
		advertLister:    v.BGPAdvertisements().Lister(),
		nodeStateLister: v.BGPNodeStates().Lister(),
	}
	for name, inf := range map[string]cache.SharedIndexInformer{
		"loadbalancerippool": c.pools, "bgppeer": c.peers, "bgpadvertisement": c.adverts, "bgpnodestate": c.nodeStates,
	} {
		if err := inf.SetTransform(trimMeta); err != nil {
			return nil, fmt.Errorf("set %s transform: %w", name, err)
		}
	}
	return c, nil
}

func (c *crdCaches) start(ctx context.Context) { c.factory.Start(ctx.Done()) }

func (c *crdCaches) synced() []cache.InformerSynced {
	return []cache.InformerSynced{c.pools.HasSynced, c.peers.HasSynced, c.adverts.HasSynced, c.nodeStates.HasSynced}
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

// NodeStates returns the BGPNodeState lister (nil without a CRD client).
func (c *Caches) NodeStates() listers.BGPNodeStateLister {
	if c.crd == nil {
		return nil
	}
	return c.crd.nodeStateLister
}
