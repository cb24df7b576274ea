package clusterview

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/client/clientset/versioned"
)

// APIVersion is the apiVersion of the lists this package prints as JSON or YAML.
const APIVersion = "cli.bgplb.io/v1alpha1"

// Clients are the API clients the views read with.
type Clients struct {
	Kube kubernetes.Interface
	CRD  versioned.Interface
}

// Service is one bgplb Service as `services` shows it.
type Service struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// VIPs are the Service's ingress IPs.
	VIPs []string `json:"vips"`
	// Pools are the LoadBalancerIPPools holding the VIPs.
	Pools []string `json:"pools"`
	// Allocated mirrors the bgplb.io/IPAllocated condition; AllocationReason is its reason.
	Allocated        bool   `json:"allocated"`
	AllocationReason string `json:"allocationReason,omitempty"`
	// Announced mirrors the bgplb.io/Announced condition; Reason is its reason.
	Announced bool   `json:"announced"`
	Reason    string `json:"reason,omitempty"`
	// Nodes are the announcing nodes the condition names (at most a few); NodeCount is
	// how many announce it in all.
	Nodes     []string `json:"nodes"`
	NodeCount int      `json:"nodeCount"`
	// Message says why the Service is not allocated or not announced (empty when it is both).
	Message string `json:"message,omitempty"`
}

// ServiceList is the output of `services`.
type ServiceList struct {
	Kind       string    `json:"kind"`
	APIVersion string    `json:"apiVersion"`
	Items      []Service `json:"items"`
}

// Session is one BGP session of one node as `sessions` shows it.
type Session struct {
	Node             string     `json:"node"`
	Peer             string     `json:"peer"`
	Address          string     `json:"address"`
	LocalASN         int64      `json:"localASN"`
	PeerASN          int64      `json:"peerASN"`
	State            string     `json:"state"`
	EstablishedSince *time.Time `json:"establishedSince,omitempty"`
	PrefixesSent     int64      `json:"prefixesSent"`
	PrefixesReceived int64      `json:"prefixesReceived"`
	LastError        string     `json:"lastError,omitempty"`
}

// SessionList is the output of `sessions`.
type SessionList struct {
	Kind       string    `json:"kind"`
	APIVersion string    `json:"apiVersion"`
	Items      []Session `json:"items"`
	// NodesWithoutState are nodes that have no BGPNodeState (no bgplbd has run there).
	NodesWithoutState []string `json:"nodesWithoutState,omitempty"`
}

// Usage is a pool's address usage in one family.
type Usage struct {
	Total int64 `json:"total"`
	Used  int64 `json:"used"`
	Free  int64 `json:"free"`
}

// Pool is one LoadBalancerIPPool as `pools` shows it.
type Pool struct {
	Name     string   `json:"name"`
	Blocks   []string `json:"blocks"`
	Disabled bool     `json:"disabled"`
	// Ready mirrors the pool's Ready condition; Reason and Message explain a pool that
	// is not ready.
	Ready   bool   `json:"ready"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	IPv4    *Usage `json:"ipv4,omitempty"`
	IPv6    *Usage `json:"ipv6,omitempty"`
	// Services counts the bgplb Services with a VIP in the pool.
	Services int `json:"services"`
}

// PoolList is the output of `pools`.
type PoolList struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	Items      []Pool `json:"items"`
}

// ours reports whether svc is a LoadBalancer Service of class (a Service without a class
// counts when bgplb's IPAllocated condition is on it: bgplb runs as the default class).
func ours(svc *corev1.Service, class string) bool {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return false
	}
	if svc.Spec.LoadBalancerClass != nil {
		return *svc.Spec.LoadBalancerClass == class
	}
	return meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ConditionIPAllocated) != nil
}

// announcedBy parses the node list of the Announced condition's message:
// "announced by N node(s) (a, b and K more)".
var announcedBy = regexp.MustCompile(`^announced by (\d+) node\(s\) \(([^)]*)\)`)

func announcingNodes(msg string) ([]string, int) {
	m := announcedBy.FindStringSubmatch(msg)
	if m == nil {
		return nil, 0
	}
	n, _ := strconv.Atoi(m[1]) // the pattern only matches digits
	list := m[2]
	if i := strings.LastIndex(list, " and "); i >= 0 && strings.HasSuffix(list, " more") {
		list = list[:i]
	}
	var nodes []string
	for _, s := range strings.Split(list, ", ") {
		if s = strings.TrimSpace(s); s != "" {
			nodes = append(nodes, s)
		}
	}
	return nodes, n
}

// poolRanges is one pool's address ranges, for finding which pool holds a VIP.
type poolRanges struct {
	name   string
	ranges [][2]netip.Addr // inclusive [first, last]
}

func rangesOf(p *v1alpha1.LoadBalancerIPPool) poolRanges {
	pr := poolRanges{name: p.Name}
	for _, b := range p.Spec.Blocks {
		if b.CIDR != "" {
			if pfx, err := netip.ParsePrefix(b.CIDR); err == nil {
				pr.ranges = append(pr.ranges, [2]netip.Addr{pfx.Masked().Addr(), lastAddr(pfx.Masked())})
			}
			continue
		}
		start, err1 := netip.ParseAddr(b.Start)
		stop, err2 := netip.ParseAddr(b.Stop)
		if err1 == nil && err2 == nil {
			pr.ranges = append(pr.ranges, [2]netip.Addr{start, stop})
		}
	}
	return pr
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b) // b has the length of an address
	return a
}

func (pr poolRanges) contains(a netip.Addr) bool {
	for _, r := range pr.ranges {
		if r[0].BitLen() == a.BitLen() && r[0].Compare(a) <= 0 && a.Compare(r[1]) <= 0 {
			return true
		}
	}
	return false
}

// Services lists the bgplb Services of loadBalancerClass class in namespace ("" for
// all), sorted by namespace and name.
func Services(ctx context.Context, c Clients, namespace, class string) (*ServiceList, error) {
	svcs, err := c.Kube.CoreV1().Services(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	pools, err := c.CRD.BgplbV1alpha1().LoadBalancerIPPools().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list loadbalancerippools: %w", err)
	}
	ranges := make([]poolRanges, 0, len(pools.Items))
	for i := range pools.Items {
		ranges = append(ranges, rangesOf(&pools.Items[i]))
	}
	slices.SortFunc(ranges, func(a, b poolRanges) int { return strings.Compare(a.name, b.name) })
	out := &ServiceList{Kind: "ServiceList", APIVersion: APIVersion, Items: []Service{}}
	for i := range svcs.Items {
		svc := &svcs.Items[i]
		if !ours(svc, class) {
			continue
		}
		out.Items = append(out.Items, serviceView(svc, ranges))
	}
	slices.SortFunc(out.Items, func(a, b Service) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return out, nil
}

func serviceView(svc *corev1.Service, ranges []poolRanges) Service {
	s := Service{Namespace: svc.Namespace, Name: svc.Name, VIPs: []string{}, Pools: []string{}, Nodes: []string{}}
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		a, err := netip.ParseAddr(ing.IP)
		if err != nil {
			continue
		}
		s.VIPs = append(s.VIPs, a.String())
		for _, pr := range ranges {
			if pr.contains(a) && !slices.Contains(s.Pools, pr.name) {
				s.Pools = append(s.Pools, pr.name)
			}
		}
	}
	alloc := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ConditionIPAllocated)
	ann := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ConditionAnnounced)
	if alloc != nil {
		s.Allocated, s.AllocationReason = alloc.Status == metav1.ConditionTrue, alloc.Reason
	}
	if ann != nil {
		s.Announced, s.Reason = ann.Status == metav1.ConditionTrue, ann.Reason
		if s.Announced {
			s.Nodes, s.NodeCount = announcingNodes(ann.Message)
			if s.Nodes == nil {
				s.Nodes = []string{}
			}
		}
	}
	switch {
	case alloc == nil:
		s.Message = "no bgplb.io/IPAllocated condition yet: is the LB-IPAM leader running?"
	case !s.Allocated:
		s.Message = alloc.Message
	case ann == nil:
		s.Message = "no bgplb.io/Announced condition yet"
	case !s.Announced:
		s.Message = ann.Message
	}
	return s
}

// Sessions lists the BGP sessions of node ("" for every node), sorted by node and peer.
func Sessions(ctx context.Context, c Clients, node string) (*SessionList, error) {
	out := &SessionList{Kind: "SessionList", APIVersion: APIVersion, Items: []Session{}}
	var states []v1alpha1.BGPNodeState
	if node != "" {
		st, err := c.CRD.BgplbV1alpha1().BGPNodeStates().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("get bgpnodestate %s: %w", node, err)
		}
		states = []v1alpha1.BGPNodeState{*st}
	} else {
		list, err := c.CRD.BgplbV1alpha1().BGPNodeStates().List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("list bgpnodestates: %w", err)
		}
		states = list.Items
		nodes, err := c.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("list nodes: %w", err)
		}
		have := map[string]bool{}
		for _, st := range states {
			have[st.Name] = true
		}
		for _, n := range nodes.Items {
			if !have[n.Name] {
				out.NodesWithoutState = append(out.NodesWithoutState, n.Name)
			}
		}
		slices.Sort(out.NodesWithoutState)
	}
	for _, st := range states {
		for _, p := range st.Status.Peers {
			s := Session{Node: st.Name, Peer: p.Name, Address: p.Address, LocalASN: p.LocalASN, PeerASN: p.PeerASN,
				State: p.State, PrefixesSent: p.PrefixesSent, PrefixesReceived: p.PrefixesReceived, LastError: p.LastError}
			if p.EstablishedSince != nil {
				t := p.EstablishedSince.UTC()
				s.EstablishedSince = &t
			}
			out.Items = append(out.Items, s)
		}
	}
	slices.SortFunc(out.Items, func(a, b Session) int {
		if c := strings.Compare(a.Node, b.Node); c != 0 {
			return c
		}
		return strings.Compare(a.Peer, b.Peer)
	})
	return out, nil
}

// Pools lists the LoadBalancerIPPools with their usage, sorted by name; class selects
// the Services counted per pool.
func Pools(ctx context.Context, c Clients, class string) (*PoolList, error) {
	pools, err := c.CRD.BgplbV1alpha1().LoadBalancerIPPools().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list loadbalancerippools: %w", err)
	}
	svcs, err := Services(ctx, c, "", class)
	if err != nil {
		return nil, err
	}
	out := &PoolList{Kind: "PoolList", APIVersion: APIVersion, Items: []Pool{}}
	for i := range pools.Items {
		p := &pools.Items[i]
		v := Pool{Name: p.Name, Blocks: []string{}, Disabled: p.Spec.Disabled}
		for _, b := range p.Spec.Blocks {
			if b.CIDR != "" {
				v.Blocks = append(v.Blocks, b.CIDR)
			} else {
				v.Blocks = append(v.Blocks, b.Start+"-"+b.Stop)
			}
		}
		if cond := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.PoolConditionReady); cond != nil {
			v.Ready = cond.Status == metav1.ConditionTrue
			if !v.Ready {
				v.Reason, v.Message = cond.Reason, cond.Message
			}
		} else {
			v.Reason, v.Message = "NoStatus", "the LB-IPAM leader has not written the pool's status"
		}
		if u := p.Status.IPv4; u != nil {
			v.IPv4 = &Usage{Total: u.Total, Used: u.Used, Free: u.Free}
		}
		if u := p.Status.IPv6; u != nil {
			v.IPv6 = &Usage{Total: u.Total, Used: u.Used, Free: u.Free}
		}
		for _, s := range svcs.Items {
			if slices.Contains(s.Pools, p.Name) {
				v.Services++
			}
		}
		out.Items = append(out.Items, v)
	}
	slices.SortFunc(out.Items, func(a, b Pool) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
