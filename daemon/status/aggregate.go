package status

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

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
	"github.com/bgplb/bgplb/daemon/eligibility"
	"github.com/bgplb/bgplb/daemon/eligibility/endpoints"
	"github.com/bgplb/bgplb/daemon/eligibility/plugins/datapathready"
	"github.com/bgplb/bgplb/daemon/servicespec"
	"github.com/bgplb/bgplb/daemon/watch"
)

// AggregatorSources are the caches the Aggregator reads (never mutated).
type AggregatorSources struct {
	Services       corelisters.ServiceLister
	Slices         func(namespace, name string) ([]*endpoints.Slice, error)
	Nodes          corelisters.NodeLister
	NodeStates     bgplisters.BGPNodeStateLister
	Peers          bgplisters.BGPPeerLister
	Advertisements bgplisters.BGPAdvertisementLister
	Pools          bgplisters.LoadBalancerIPPoolLister
}

// EvaluatorFactory returns the eligibility Runner evaluating for node, given views of
// that node's CNI registrations and sessions (read from its BGPNodeState). daemon/app
// builds it with the same plugin registry and profile as the node's own Runner.
type EvaluatorFactory func(node string, endpoints eligibility.EndpointRegistry, sessions eligibility.SessionState) (announce.Evaluator, error)

// Aggregator writes the bgplb.io/Announced condition of our Services (leader only).
type Aggregator struct {
	kube         kubernetes.Interface
	crd          versioned.Interface
	src          AggregatorSources
	class        string
	defaultClass bool
	newEval      EvaluatorFactory

	mu    sync.Mutex
	evals map[string]announce.Evaluator // node name -> its Runner
}

// NewAggregator returns an Aggregator for Services of class (and class-less ones when
// defaultClass).
func NewAggregator(kube kubernetes.Interface, crd versioned.Interface, src AggregatorSources, newEval EvaluatorFactory, class string, defaultClass bool) *Aggregator {
	return &Aggregator{kube: kube, crd: crd, src: src, newEval: newEval, class: class, defaultClass: defaultClass,
		evals: map[string]announce.Evaluator{}}
}

// PeersKey is the work-queue key that makes Sync write the BGPPeers' status conditions.
const PeersKey = "@bgppeers"

// Ours reports whether svc is a LoadBalancer Service of our class.
func (a *Aggregator) Ours(svc *corev1.Service) bool {
	return servicespec.Class{Name: a.class, Default: a.defaultClass}.Handles(svc)
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
	cond, err := a.condition(ctx, svc)
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

// maxNamedNodes bounds the node names an Announced message lists (then "and N more").
const maxNamedNodes = 8

// condition derives the Announced condition of svc from announce.PlanService for every
// node: a node announces when its plan says so and a peer its paths go to has an
// established session (per its BGPNodeState).
func (a *Aggregator) condition(ctx context.Context, svc *corev1.Service) (metav1.Condition, error) {
	cond := metav1.Condition{Type: v1alpha1.ConditionAnnounced, ObservedGeneration: svc.Generation, Status: metav1.ConditionFalse}
	in := announce.PlanInput{Service: svc}
	var err error
	if in.Slices, err = a.src.Slices(svc.Namespace, svc.Name); err != nil {
		return cond, err
	}
	if in.Advertisements, err = a.src.Advertisements.List(labels.Everything()); err != nil {
		return cond, fmt.Errorf("list bgpadvertisements: %w", err)
	}
	if in.Pools, err = a.src.Pools.List(labels.Everything()); err != nil {
		return cond, fmt.Errorf("list loadbalancerippools: %w", err)
	}
	peers, err := a.src.Peers.List(labels.Everything())
	if err != nil {
		return cond, fmt.Errorf("list bgppeers: %w", err)
	}
	nodes, sessions, established, err := a.planNodes(peers)
	if err != nil {
		return cond, err
	}
	plans, err := announce.PlanService(ctx, in, nodes)
	if err != nil {
		return cond, err
	}
	var announcing, wanting []string
	var noMatch, outside, ineligible, tooMany *announce.NodePlan
	var heldBack []string // "node: why" of nodes whose endpoints the datapath cannot serve
	for i, p := range plans {
		switch {
		case !p.Announces() && p.Decision.Reason == datapathready.ReasonDatapathNotReady:
			heldBack = append(heldBack, p.Node+": "+p.Decision.Message)
		case p.Announces() && p.Established:
			announcing = append(announcing, p.Node)
		case p.Announces():
			wanting = append(wanting, p.Node)
		case p.State.Reason == v1alpha1.ReasonNoMatchingAdvertisement && noMatch == nil:
			noMatch = &plans[i]
		case p.State.Reason == v1alpha1.ReasonIPOutsidePools && outside == nil:
			outside = &plans[i]
		case p.State.Reason == v1alpha1.ReasonTooManyFrontends && tooMany == nil:
			tooMany = &plans[i]
		case p.State.Reason == v1alpha1.ReasonNoEligibleEndpoints && ineligible == nil:
			ineligible = &plans[i]
		}
	}
	counts := fmt.Sprintf("%d of %d BGP session(s) established cluster-wide", established, sessions)
	switch {
	case len(announcing) > 0:
		cond.Status, cond.Reason = metav1.ConditionTrue, v1alpha1.ReasonAnnounced
		// No cluster-wide session counts here: they would rewrite every announced
		// Service's status whenever any session anywhere flaps.
		cond.Message = fmt.Sprintf("announced by %d node(s) (%s)", len(announcing), sample(announcing))
		if len(heldBack) > 0 {
			cond.Message += fmt.Sprintf("; not announced by %d node(s) whose endpoints are not datapath-ready (%s)", len(heldBack), sample(heldBack))
		}
	case tooMany != nil: // a property of the Service: the same on every node
		cond.Reason, cond.Message = v1alpha1.ReasonTooManyFrontends, tooMany.State.Message
	case len(peers) == 0:
		cond.Reason, cond.Message = v1alpha1.ReasonNoPeers, "no BGPPeer exists"
	case len(wanting) > 0:
		cond.Reason = v1alpha1.ReasonSessionsDown
		cond.Message = fmt.Sprintf("%d node(s) (%s) would announce it but have no established BGP session to a peer it goes to; %s",
			len(wanting), sample(wanting), counts)
	case established == 0:
		cond.Reason = v1alpha1.ReasonSessionsDown
		cond.Message = fmt.Sprintf("0 of %d BGP session(s) established over all nodes", sessions)
	case outside != nil:
		cond.Reason, cond.Message = v1alpha1.ReasonIPOutsidePools, outside.State.Message
	case noMatch != nil:
		cond.Reason, cond.Message = v1alpha1.ReasonNoMatchingAdvertisement, "no BGPAdvertisement selects the service, its pool and a BGPPeer"
	case len(heldBack) > 0:
		cond.Reason = datapathready.ReasonDatapathNotReady
		cond.Message = fmt.Sprintf("announced by 0 nodes: local endpoints are not datapath-ready (%s); %s", sample(heldBack), counts)
	default:
		cond.Reason = v1alpha1.ReasonNoEligibleEndpoints
		cond.Message = "announced by 0 nodes: no node has an eligible endpoint"
		if ineligible != nil {
			cond.Message += fmt.Sprintf(" (%s: %s)", ineligible.Node, ineligible.State.Message)
		}
		cond.Message += "; " + counts
	}
	return cond, nil
}

// sample joins up to maxNamedNodes names (sorted) and counts the rest.
func sample(names []string) string {
	if len(names) <= maxNamedNodes {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:maxNamedNodes], ", "), len(names)-maxNamedNodes)
}

// planNodes returns every node (sorted by name) as announce.PlanService sees it, with
// the configured and established sessions over all nodes.
func (a *Aggregator) planNodes(peers []*v1alpha1.BGPPeer) (out []announce.PlanNode, sessions, established int, err error) {
	nodes, err := a.src.Nodes.List(labels.Everything())
	if err != nil {
		return nil, 0, 0, fmt.Errorf("list nodes: %w", err)
	}
	slices.SortFunc(nodes, func(x, y *corev1.Node) int { return strings.Compare(x.Name, y.Name) })
	peerLabels := make(map[string]map[string]string, len(peers))
	for _, p := range peers {
		peerLabels[p.Name] = p.Labels
	}
	for _, n := range nodes {
		eval, err := a.evaluator(n.Name)
		if err != nil {
			return nil, 0, 0, err
		}
		pn := announce.PlanNode{Name: n.Name, Node: n, Eval: eval}
		if st, err := a.src.NodeStates.Get(n.Name); err == nil {
			for _, ps := range st.Status.Peers {
				addr, err := netip.ParseAddr(ps.Address)
				if err != nil {
					continue // a BGPPeer the node could not configure
				}
				up := ps.State == v1alpha1.SessionEstablished
				sessions++
				if up {
					established++
				}
				pn.Peers = append(pn.Peers, announce.PlanPeer{Name: ps.Name, Address: addr.Unmap(), Labels: peerLabels[ps.Name], Established: up})
			}
		}
		out = append(out, pn)
	}
	return out, sessions, established, nil
}

// evaluator returns node's Runner, created on first use.
func (a *Aggregator) evaluator(node string) (announce.Evaluator, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e, ok := a.evals[node]; ok {
		return e, nil
	}
	v := nodeStateView{states: a.src.NodeStates, node: node}
	e, err := a.newEval(node, v, v)
	if err != nil {
		return nil, fmt.Errorf("create eligibility runner for node %s: %w", node, err)
	}
	a.evals[node] = e
	return e, nil
}

// nodeStateView reads one node's CNI registrations and sessions from its BGPNodeState.
type nodeStateView struct {
	states bgplisters.BGPNodeStateLister
	node   string
}

// Registered implements eligibility.EndpointRegistry: a pod counts as registered unless
// the node lists it as not ready (beyond v1alpha1.MaxNotReadyPods the view errs on the
// side of "registered").
func (v nodeStateView) Registered(namespace, name string, _ netip.Addr) bool {
	st, err := v.states.Get(v.node)
	if err != nil || st.Status.Datapath == nil {
		return true
	}
	return !slices.Contains(st.Status.Datapath.NotReadyPods, namespace+"/"+name)
}

// DatapathNotReady implements datapathready.NotReadyReporter on the node's reported
// state: a pod the node lists was not registered, or not datapath-ready, there.
func (v nodeStateView) DatapathNotReady(namespace, name string, ip netip.Addr) (string, bool) {
	if v.Registered(namespace, name, ip) {
		return "", false
	}
	st, err := v.states.Get(v.node)
	if err != nil || st.Status.Datapath == nil {
		return "", false
	}
	if r := st.Status.Datapath.Reason; r != "" {
		return r, true
	}
	return "not registered by the CNI plugin (status.datapath.notReadyPods of the node's BGPNodeState)", true
}

// EstablishedPeers implements eligibility.SessionState.
func (v nodeStateView) EstablishedPeers() int {
	st, err := v.states.Get(v.node)
	if err != nil {
		return 0
	}
	n := 0
	for _, p := range st.Status.Peers {
		if p.State == v1alpha1.SessionEstablished {
			n++
		}
	}
	return n
}

// nodeStates returns every node's BGPNodeState sorted by node name.
func (a *Aggregator) nodeStates() []*v1alpha1.BGPNodeState {
	out, err := a.src.NodeStates.List(labels.Everything())
	if err != nil {
		return nil
	}
	slices.SortFunc(out, func(x, y *v1alpha1.BGPNodeState) int { return strings.Compare(x.Name, y.Name) })
	return out
}

// NodeStateChanges is the Announced aggregator's watch.Triggers.NodeStateChanges: a
// change of a node's sessions changes every Service's condition and the BGPPeers'
// conditions; a change of its not-ready pods every Service's; a change of its counts or
// errors none.
func NodeStateChanges(oldObj, newObj any) []string {
	o, _ := oldObj.(*v1alpha1.BGPNodeState)
	n, _ := newObj.(*v1alpha1.BGPNodeState)
	if o == nil || n == nil || !slices.EqualFunc(o.Status.Peers, n.Status.Peers, samePeerState) {
		return []string{watch.AllServices, PeersKey}
	}
	if !slices.Equal(notReady(o), notReady(n)) {
		return []string{watch.AllServices}
	}
	return nil
}

func notReady(s *v1alpha1.BGPNodeState) []string {
	if s.Status.Datapath == nil {
		return nil
	}
	return s.Status.Datapath.NotReadyPods
}

// samePeerState compares what the conditions read of a session.
func samePeerState(a, b v1alpha1.BGPPeerState) bool {
	return a.Name == b.Name && a.Address == b.Address && a.State == b.State && a.LastError == b.LastError
}

// syncPeers writes each BGPPeer's Established condition (every selected node has the
// session up; the message counts nodes) and Invalid condition (a node could not configure
// the peer, e.g. a missing password Secret) from the nodes' BGPNodeStates.
func (a *Aggregator) syncPeers(ctx context.Context) error {
	peers, err := a.src.Peers.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("list bgppeers: %w", err)
	}
	states := a.nodeStates()
	var errs []error
	for _, p := range peers {
		total, up := 0, 0
		var down, invalid []string
		for _, s := range states {
			for _, ps := range s.Status.Peers {
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
			est.Status, est.Reason = metav1.ConditionFalse, v1alpha1.ReasonSessionsDown
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
