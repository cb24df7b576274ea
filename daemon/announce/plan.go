package announce

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/eligibility"
	"github.com/bgplb/bgplb/daemon/eligibility/endpoints"
	"github.com/bgplb/bgplb/daemon/peers"
	"github.com/bgplb/bgplb/daemon/pools"
	"github.com/bgplb/bgplb/daemon/servicespec"
)

// PlanInput is the cluster state one Service's plan reads (cached objects, never mutated).
type PlanInput struct {
	Service        *corev1.Service
	Slices         []*endpoints.Slice
	Advertisements []*v1alpha1.BGPAdvertisement
	Pools          []*v1alpha1.LoadBalancerIPPool
}

// PlanNode is one node as the plan sees it.
type PlanNode struct {
	// Name of the node (never empty).
	Name string
	// Node is the node's object; nil when unknown.
	Node *corev1.Node
	// Eval is the eligibility Runner evaluating for this node.
	Eval Evaluator
	// Peers are the BGPPeers configured on the node, sorted by name.
	Peers []PlanPeer
}

// PlanPeer is a BGPPeer configured on a node.
type PlanPeer struct {
	Name    string
	Address netip.Addr
	Labels  map[string]string
	// Established reports whether the node's session with the peer is up.
	Established bool
}

// NodePlan is what one node does for a Service.
type NodePlan struct {
	// Node is the node's name.
	Node string
	// Decision is the eligibility outcome for the node.
	Decision eligibility.Decision
	// VIPs are the Service's ingress IPs (deduplicated).
	VIPs []netip.Addr
	// State says whether (Reason v1alpha1.ReasonAnnounced) and what the node announces, or why not.
	State ServiceState
	// Established reports whether one of the peers the node's paths go to has an
	// established session: the node's route then reaches a router.
	Established bool

	paths paths
}

// Announces reports whether the node originates the Service's prefixes.
func (p NodePlan) Announces() bool { return p.State.Reason == v1alpha1.ReasonAnnounced }

// PlanService decides for each node whether it announces the Service of in, and with
// which paths. It is the one planning function: a node's announcer calls it for itself
// with its own eligibility Runner and configured peers, and the LB-IPAM leader calls it
// for every node to write the Service's bgplb.io/Announced condition.
func PlanService(ctx context.Context, in PlanInput, nodes []PlanNode) ([]NodePlan, error) {
	ads := slices.Clone(in.Advertisements)
	slices.SortFunc(ads, func(x, y *v1alpha1.BGPAdvertisement) int { return strings.Compare(x.Name, y.Name) })
	in.Advertisements = ads
	out := make([]NodePlan, 0, len(nodes))
	for _, n := range nodes {
		p, err := planNode(ctx, in, n)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// planNode is PlanService for one node; in.Advertisements are sorted by name.
func planNode(ctx context.Context, in PlanInput, n PlanNode) (NodePlan, error) {
	svc := in.Service
	key := svc.Namespace + "/" + svc.Name
	p := NodePlan{Node: n.Name, State: ServiceState{Key: key}}
	dec, err := n.Eval.Evaluate(ctx, &eligibility.Input{Service: svc, Slices: in.Slices, Node: n.Node})
	if err != nil {
		return p, fmt.Errorf("evaluate service %s for node %s: %w", key, n.Name, err)
	}
	p.Decision = dec
	if !dec.InScope {
		p.State.Reason, p.State.Message = dec.Reason, dec.Message
		return p, nil
	}
	p.VIPs = ingressIPs(svc)
	if len(p.VIPs) == 0 {
		p.State.Reason, p.State.Message = v1alpha1.ReasonNoIP, "service has no ingress IP"
		return p, nil
	}
	if n := servicespec.Frontends(svc, len(p.VIPs)); n > servicespec.MaxFrontends {
		p.State.Reason = v1alpha1.ReasonTooManyFrontends
		p.State.Message = fmt.Sprintf("%d VIPs × %d ports = %d datapath frontends, more than the %d one Service may use: not programmed nor announced",
			len(p.VIPs), len(svc.Spec.Ports), n, servicespec.MaxFrontends)
		p.VIPs = nil // nothing to program
		return p, nil
	}
	p.State.Weight = dec.Weight
	if !dec.Announce {
		p.State.Reason, p.State.Message = v1alpha1.ReasonNoEligibleEndpoints, dec.Reason+": "+dec.Message
		return p, nil
	}
	var nodeLabels map[string]string
	if n.Node != nil {
		nodeLabels = n.Node.Labels
	}
	adverts, inPools := matchingAdvertisements(svc, nodeLabels, p.VIPs, in.Advertisements, in.Pools)
	configured := make([]peers.Peer, 0, len(n.Peers))
	for _, pr := range n.Peers {
		configured = append(configured, peers.Peer{Name: pr.Name, Address: pr.Address, Labels: pr.Labels})
	}
	outside, noPeer := 0, 0
	for _, vip := range p.VIPs {
		if !inPools[vip] {
			outside++ // never announced (the speaker would refuse it too)
			continue
		}
		ads := adverts[vip]
		if len(ads) == 0 {
			continue
		}
		path, ok := pathForPeers(ctx, vip, ads, dec.Weight, configured)
		if !ok {
			noPeer++ // the advertisements' peerSelectors select none of this node's peers
			continue
		}
		if p.paths.get(path.Prefix) == nil {
			p.paths = append(p.paths, &path)
		}
	}
	switch {
	case len(p.paths) == 0 && outside == len(p.VIPs):
		p.State.Reason, p.State.Message = v1alpha1.ReasonIPOutsidePools, fmt.Sprintf("ingress IPs %v are in no LoadBalancerIPPool", p.VIPs)
		return p, nil
	case len(p.paths) == 0:
		p.State.Reason, p.State.Message = v1alpha1.ReasonNoMatchingAdvertisement, "no BGPAdvertisement selects the service, its pool and this node"
		if noPeer > 0 {
			p.State.Message = "no BGPAdvertisement selecting the service, its pool and this node selects one of this node's BGPPeers (peerSelector)"
		}
		return p, nil
	}
	p.State.Reason, p.State.Message = v1alpha1.ReasonAnnounced, dec.Message
	for _, path := range p.paths {
		p.State.Prefixes = append(p.State.Prefixes, path.Prefix)
	}
	slices.SortFunc(p.State.Prefixes, pools.ComparePrefix)
	for _, pr := range n.Peers {
		if !pr.Established {
			continue
		}
		for _, path := range p.paths {
			if _, ok := path.For(pr.Address); ok {
				p.Established = true
			}
		}
	}
	return p, nil
}

// matchingAdvertisements returns per VIP the advertisements (ads, sorted by name)
// selecting the Service, the VIP's pool and the node (by its labels), and which VIPs are
// inside some pool.
func matchingAdvertisements(svc *corev1.Service, nodeLabels map[string]string, vips []netip.Addr, ads []*v1alpha1.BGPAdvertisement, poolList []*v1alpha1.LoadBalancerIPPool) (map[netip.Addr][]*v1alpha1.BGPAdvertisement, map[netip.Addr]bool) {
	inPools := map[netip.Addr]bool{}
	for _, vip := range vips {
		inPools[vip] = len(pools.Containing(poolList, vip)) > 0
	}
	out := map[netip.Addr][]*v1alpha1.BGPAdvertisement{}
	for _, ad := range ads {
		ok, err := pools.Matches(ad.Spec.ServiceSelector, svc.Labels)
		if err != nil || !ok {
			continue // an invalid selector selects nothing
		}
		if ok, err := pools.Matches(ad.Spec.NodeSelector, nodeLabels); err != nil || !ok {
			continue
		}
		for _, vip := range vips {
			if ad.Spec.PoolSelector != nil {
				matched := false
				for _, pool := range pools.Containing(poolList, vip) {
					if ok, err := pools.Matches(ad.Spec.PoolSelector, pool.Labels); err == nil && ok {
						matched = true
						break
					}
				}
				if !matched {
					continue
				}
			}
			out[vip] = append(out[vip], ad)
		}
	}
	return out, inPools
}
