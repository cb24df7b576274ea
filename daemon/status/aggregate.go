package status

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/bgplb/bgplb/daemon/announce"
	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/client/clientset/versioned"
	bgplisters "github.com/bgplb/bgplb/daemon/client/listers/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/eligibility/plugins/datapathready"
)

// AggregatorSources are the caches the Aggregator reads (never mutated).
type AggregatorSources struct {
	Services corelisters.ServiceLister
	// NodeStates is the store of a BGPNodeState informer whose transform is
	// NodeSummaryTransform: it holds *NodeSummary values.
	NodeStates     cache.Store
	Peers          bgplisters.BGPPeerLister
	Advertisements bgplisters.BGPAdvertisementLister
	Pools          bgplisters.LoadBalancerIPPoolLister
}

// Aggregator writes the bgplb.io/Announced condition of our Services (leader only).
type Aggregator struct {
	kube         kubernetes.Interface
	crd          versioned.Interface
	src          AggregatorSources
	class        string
	defaultClass bool
}

type nodeStateIndex struct {
	nodes       []*NodeSummary // sorted by name
	established int            // sessions Established over all nodes
	sessions    int            // configured sessions over all nodes
}

// NewAggregator returns an Aggregator for Services of class (and class-less ones when
// defaultClass).
func NewAggregator(kube kubernetes.Interface, crd versioned.Interface, src AggregatorSources, class string, defaultClass bool) *Aggregator {
	return &Aggregator{kube: kube, crd: crd, src: src, class: class, defaultClass: defaultClass}
}

// PeersKey is the work-queue key that makes Sync write the BGPPeers' status conditions.
const PeersKey = "@bgppeers"

// Ours reports whether svc is a LoadBalancer Service of our class.
func (a *Aggregator) Ours(svc *corev1.Service) bool {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return false
	}
	if svc.Spec.LoadBalancerClass == nil {
		return a.defaultClass
	}
	return *svc.Spec.LoadBalancerClass == a.class
}

// Sync is the watch.SyncFunc: Service keys get the Announced condition, PeersKey the
// BGPPeers' Established and Invalid conditions.
func (a *Aggregator) Sync(ctx context.Context, key string) error {
	if key == PeersKey {
		return a.syncPeers(ctx)
	}
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	svc, err := a.src.Services.Services(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get service %s: %w", key, err)
	}
	if !a.Ours(svc) {
		return nil // never write to another class
	}
	hasIP := false
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		hasIP = hasIP || ing.IP != ""
	}
	if !hasIP {
		return nil // bgplb.io/IPAllocated explains it
	}
	cond, err := a.condition(svc, key)
	if err != nil {
		return err
	}
	if sameCond(meta.FindStatusCondition(svc.Status.Conditions, cond.Type), cond) {
		return nil
	}
	upd := svc.DeepCopy()
	meta.SetStatusCondition(&upd.Status.Conditions, cond)
	if _, err := a.kube.CoreV1().Services(namespace).UpdateStatus(ctx, upd, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update announced condition of service %s: %w", key, err)
	}
	klog.FromContext(ctx).V(2).Info("announced condition written", "service", klog.KObj(svc), "reason", cond.Reason, "message", cond.Message)
	return nil
}

// condition derives the Announced condition of svc.
func (a *Aggregator) condition(svc *corev1.Service, key string) (metav1.Condition, error) {
	idx := a.nodeIndex()
	nodes, want := idx.serviceNodes(key)
	cond := metav1.Condition{Type: v1alpha1.ConditionAnnounced, ObservedGeneration: svc.Generation, Status: metav1.ConditionFalse}
	switch {
	case len(nodes) > 0:
		cond.Status, cond.Reason = metav1.ConditionTrue, announce.ReasonAnnounced
		cond.Message = fmt.Sprintf("announced by %d node(s) (%s); %d of %d BGP session(s) established cluster-wide",
			len(nodes), strings.Join(nodes, ", "), idx.established, idx.sessions)
		if held := idx.datapathNotReadyNodes(key); len(held) > 0 {
			cond.Message += "; " + datapathNotReadyMessage(held)
		}
	default:
		peers, err := a.src.Peers.List(labels.Everything())
		if err != nil {
			return cond, fmt.Errorf("list bgppeers: %w", err)
		}
		matched, err := a.advertised(svc, peers)
		if err != nil {
			return cond, err
		}
		switch {
		case len(peers) == 0:
			cond.Reason, cond.Message = announce.ReasonNoPeers, "no BGPPeer exists"
		case len(want) > 0:
			cond.Reason = announce.ReasonSessionsDown
			cond.Message = fmt.Sprintf("%d node(s) (%s) would announce it but have no established BGP session to a peer it goes to; %d of %d session(s) established cluster-wide",
				len(want), strings.Join(want, ", "), idx.established, idx.sessions)
		case idx.established == 0:
			cond.Reason = announce.ReasonSessionsDown
			cond.Message = fmt.Sprintf("0 of %d BGP session(s) established over all nodes", idx.sessions)
		case !matched:
			cond.Reason, cond.Message = announce.ReasonNoMatchingAdvertisement, "no BGPAdvertisement selects the service, its pool and a BGPPeer"
		case len(idx.datapathNotReadyNodes(key)) > 0:
			cond.Reason = datapathready.ReasonDatapathNotReady
			cond.Message = "announced by 0 nodes: " + datapathNotReadyMessage(idx.datapathNotReadyNodes(key))
		default:
			cond.Reason = announce.ReasonNoEligibleEndpoints
			cond.Message = fmt.Sprintf("announced by 0 nodes: no node has an eligible endpoint; %d of %d BGP session(s) established",
				idx.established, idx.sessions)
		}
	}
	return cond, nil
}

// advertised reports whether some BGPAdvertisement selects svc, the pool of one of its
// IPs and (peerSelector) at least one of peers.
func (a *Aggregator) advertised(svc *corev1.Service, peers []*v1alpha1.BGPPeer) (bool, error) {
	ads, err := a.src.Advertisements.List(labels.Everything())
	if err != nil {
		return false, fmt.Errorf("list bgpadvertisements: %w", err)
	}
	pools, err := a.src.Pools.List(labels.Everything())
	if err != nil {
		return false, fmt.Errorf("list loadbalancerippools: %w", err)
	}
	for _, ad := range ads {
		if ok, err := announce.SelectorMatches(ad.Spec.ServiceSelector, svc.Labels); err != nil || !ok {
			continue
		}
		if !slices.ContainsFunc(peers, func(p *v1alpha1.BGPPeer) bool {
			ok, err := announce.SelectorMatches(ad.Spec.PeerSelector, p.Labels)
			return err == nil && ok
		}) {
			continue
		}
		if ad.Spec.PoolSelector == nil {
			return true, nil
		}
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			ip, err := netip.ParseAddr(ing.IP)
			if err != nil {
				continue
			}
			for _, p := range announce.PoolsContaining(pools, ip.Unmap()) {
				if ok, err := announce.SelectorMatches(ad.Spec.PoolSelector, p.Labels); err == nil && ok {
					return true, nil
				}
			}
		}
	}
	return false, nil
}

// nodeIndex returns the nodes' summaries, sorted by name, with the session counts.
func (a *Aggregator) nodeIndex() nodeStateIndex {
	idx := nodeStateIndex{nodes: a.summaries()}
	for _, s := range idx.nodes {
		c := s.sessionCounts()
		idx.sessions += c[0]
		idx.established += c[1]
	}
	return idx
}

// summaries returns every node's summary sorted by node name.
func (a *Aggregator) summaries() []*NodeSummary {
	var out []*NodeSummary
	for _, obj := range a.src.NodeStates.List() {
		if s, ok := obj.(*NodeSummary); ok {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(x, y *NodeSummary) int { return strings.Compare(x.Name, y.Name) })
	return out
}

// serviceNodes returns the nodes announcing Service key to an established peer and those
// that would announce it but have no established peer it goes to.
func (idx nodeStateIndex) serviceNodes(key string) (announcing, wanting []string) {
	for _, s := range idx.nodes {
		switch {
		case s.Announces(key):
			announcing = append(announcing, s.Name)
		case s.Wants(key):
			wanting = append(wanting, s.Name)
		}
	}
	return announcing, wanting
}

// syncPeers writes each BGPPeer's Established condition (every selected node has the
// session up; the message counts nodes) and Invalid condition (a node could not configure
// the peer, e.g. a missing password Secret) from the nodes' BGPNodeStates.
func (a *Aggregator) syncPeers(ctx context.Context) error {
	peers, err := a.src.Peers.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("list bgppeers: %w", err)
	}
	states := a.summaries()
	var errs []error
	for _, p := range peers {
		total, up := 0, 0
		var down, invalid []string
		for _, s := range states {
			for _, ps := range s.Peers {
				if ps.Name != p.Name {
					continue
				}
				if ps.Address == "" && ps.LastError != "" { // not configured on that node
					invalid = append(invalid, s.Name+": "+ps.LastError)
					continue
				}
				total++
				if ps.State == v1alpha1.SessionEstablished {
					up++
				} else if len(down) < 3 {
					d := s.Name + " " + ps.State
					if ps.LastError != "" {
						d += " (" + ps.LastError + ")"
					}
					down = append(down, d)
				}
			}
		}
		est := metav1.Condition{Type: v1alpha1.PeerConditionEstablished, ObservedGeneration: p.Generation}
		switch {
		case total == 0:
			est.Status, est.Reason, est.Message = metav1.ConditionFalse, "NoSessions", "no node has a session with this peer"
		case up == total:
			est.Status, est.Reason = metav1.ConditionTrue, "Established"
			est.Message = fmt.Sprintf("%d of %d node(s) established", up, total)
		default:
			est.Status, est.Reason = metav1.ConditionFalse, announce.ReasonSessionsDown
			est.Message = fmt.Sprintf("%d of %d node(s) established; down: %s", up, total, strings.Join(down, "; "))
		}
		inv := metav1.Condition{Type: v1alpha1.PeerConditionInvalid, ObservedGeneration: p.Generation,
			Status: metav1.ConditionFalse, Reason: "Valid", Message: "every selected node configured the peer"}
		if len(invalid) > 0 {
			inv.Status, inv.Reason, inv.Message = metav1.ConditionTrue, "NotConfigured", strings.Join(invalid, "; ")
		}
		if sameCond(meta.FindStatusCondition(p.Status.Conditions, est.Type), est) &&
			sameCond(meta.FindStatusCondition(p.Status.Conditions, inv.Type), inv) {
			continue
		}
		upd := p.DeepCopy()
		meta.SetStatusCondition(&upd.Status.Conditions, est)
		meta.SetStatusCondition(&upd.Status.Conditions, inv)
		if _, err := a.crd.BgplbV1alpha1().BGPPeers().UpdateStatus(ctx, upd, metav1.UpdateOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("update status of bgppeer %s: %w", p.Name, err))
		}
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

func sameCond(old *metav1.Condition, c metav1.Condition) bool {
	return old != nil && old.Status == c.Status && old.Reason == c.Reason && old.Message == c.Message &&
		old.ObservedGeneration == c.ObservedGeneration
}
