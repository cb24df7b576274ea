package eligibility

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/bgplb/bgplb/daemon/eligibility/endpoints"
)

// RegisteredFunc reports whether the CNI plugin has registered the pod owning ip on this
// node (the datapath can reach it). A nil RegisteredFunc treats every local endpoint as
// registered ("kube-proxy datapath mode").
type RegisteredFunc func(podNamespace, podName string, ip netip.Addr) bool

// Port is one port of an EndpointSlice.
type Port struct {
	Name     string
	Protocol corev1.Protocol
	Port     int32
}

// Endpoint is one address of an EndpointSlice endpoint with its resolved conditions
// (ready nil = true, serving nil = ready, terminating nil = false).
type Endpoint struct {
	IP           netip.Addr
	Ports        []Port
	NodeName     string
	PodNamespace string // from targetRef when it names a Pod
	PodName      string
	Ready        bool
	Serving      bool
	Terminating  bool
}

// LocalEndpoint is an Endpoint on this node; the type name documents the scope.
type LocalEndpoint = Endpoint

// Selection is the result of SelectEndpoints: docs/design.md decisions 2 and 3 for one node.
type Selection struct {
	// Announce is true when this node should advertise the VIP under the given policy.
	Announce bool
	// NewFlow are the local eligible endpoints that take new connections: the ready ones,
	// or, when no ready local endpoint is left, the serving (terminating) ones.
	NewFlow []LocalEndpoint
	// Keep are the local eligible endpoints whose established flows are kept: every
	// registered local endpoint that is ready, serving or terminating. Terminating
	// endpoints that no longer serve still finish their in-flight connections (drain).
	Keep []LocalEndpoint

	ReadyLocal          int  // eligible local endpoints with ready true
	ServingLocal        int  // eligible local endpoints with serving true (includes ready ones)
	UnregisteredLocal   int  // local endpoints skipped because the CNI did not register them
	UntrustedEndpoints  int  // endpoints skipped because their targetRef names no pod of the Service's namespace
	ReadyElsewhere      bool // some endpoint on another node is ready
	ServingElsewhere    bool // some endpoint on another node is serving
	ReadyAnywhere       bool // ReadyLocal > 0 || ReadyElsewhere
	EligibleClusterWide bool // ≥1 eligible endpoint anywhere (ready, or serving when none is ready)
}

// SelectEndpoints is the one predicate of docs/design.md decisions 2 and 3, shared by the
// TrafficPolicy plugin (announce or not) and the datapath (which backends to program).
//
//   - An endpoint is local when its nodeName equals nodeName; it is eligible when it is
//     local and isRegistered accepts it (nil isRegistered accepts all). With a registry
//     (isRegistered != nil) an endpoint whose targetRef does not name a Pod in the
//     slice's (the Service's) namespace is ignored everywhere: it is never eligible and
//     never makes another node's endpoint count (UntrustedEndpoints).
//   - A node advertises under Local when it has ≥1 eligible ready endpoint (ready nil =
//     true), or when no ready endpoint exists anywhere and it has ≥1 eligible serving one.
//   - Ready endpoints take new flows; serving (terminating) endpoints take new flows only
//     when no ready local endpoint is left.
//   - Under Cluster every node advertises while ≥1 eligible endpoint exists cluster-wide
//     (endpoints on other nodes are judged by their slice conditions only: their own node
//     vouches for their registration).
//
// Endpoints are deduplicated by (IP, ports) because a Service's endpoints may transiently
// appear in two slices. FQDN slices are ignored. The result is deterministic: endpoints
// are ordered by IP then ports.
func SelectEndpoints(policy corev1.ServiceExternalTrafficPolicy, nodeName string, epSlices []*endpoints.Slice, isRegistered RegisteredFunc) Selection {
	var sel Selection
	var readyLocal, servingLocal, drainingLocal []LocalEndpoint
	seen := map[string]bool{} // "<ip>|<ports>" -> seen
	for _, slice := range epSlices {
		if slice == nil {
			continue
		}
		if slice.AddressType != discoveryv1.AddressTypeIPv4 && slice.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		ports := slicePorts(slice)
		for i := range slice.Endpoints {
			ep := &slice.Endpoints[i]
			if len(ep.Addresses) == 0 {
				continue
			}
			// Consumers use the first address (discovery/v1 contract).
			ip := ep.Addresses[0]
			if !ip.IsValid() {
				continue // did not parse
			}
			ip = ip.Unmap()
			e := Endpoint{IP: ip, Ports: ports, NodeName: ep.NodeName}
			e.PodNamespace, e.PodName = slice.Namespace, trustedPod(slice.Namespace, ep.TargetRef)
			if isRegistered != nil && e.PodName == "" {
				// Not a pod of the Service's namespace (no targetRef, another kind, or
				// another namespace): it never counts, here or on any node (docs/design.md
				// decision 2, trust boundary).
				sel.UntrustedEndpoints++
				continue
			}
			e.Ready = ep.Conditions.Ready.Or(true)
			e.Serving = ep.Conditions.Serving.Or(e.Ready)
			e.Terminating = ep.Conditions.Terminating.Or(false)

			key := ip.String() + "|" + portsKey(ports)
			if seen[key] {
				continue
			}
			seen[key] = true

			if e.NodeName != nodeName || nodeName == "" {
				sel.ReadyElsewhere = sel.ReadyElsewhere || e.Ready
				sel.ServingElsewhere = sel.ServingElsewhere || e.Serving || e.Ready
				continue
			}
			if !e.Ready && !e.Serving && !e.Terminating {
				continue // not ready and not draining: nothing to do with it
			}
			if isRegistered != nil && !isRegistered(e.PodNamespace, e.PodName, e.IP) {
				sel.UnregisteredLocal++
				continue
			}
			switch {
			case e.Ready:
				readyLocal = append(readyLocal, e)
			case e.Serving:
				servingLocal = append(servingLocal, e)
			default:
				drainingLocal = append(drainingLocal, e)
			}
		}
	}
	sortEndpoints(readyLocal)
	sortEndpoints(servingLocal)
	sortEndpoints(drainingLocal)

	sel.ReadyLocal = len(readyLocal)
	sel.ServingLocal = len(readyLocal) + len(servingLocal)
	sel.ReadyAnywhere = sel.ReadyLocal > 0 || sel.ReadyElsewhere
	sel.EligibleClusterWide = sel.ReadyAnywhere || sel.ServingLocal > 0 || sel.ServingElsewhere

	// Copies of exactly the right size: the announcer and the datapath keep these for every
	// Service, and append's doubling leaves up to half of an array unused.
	if len(readyLocal) > 0 {
		sel.NewFlow = slices.Clip(slices.Clone(readyLocal))
	} else {
		sel.NewFlow = slices.Clip(slices.Clone(servingLocal))
	}
	if len(servingLocal) == 0 && len(drainingLocal) == 0 {
		// The usual case: Keep is NewFlow. Share the array (results are never mutated;
		// clipped, an append copies) so 10k Services do not hold every endpoint twice.
		sel.Keep = sel.NewFlow
	} else {
		sel.Keep = make([]LocalEndpoint, 0, len(readyLocal)+len(servingLocal)+len(drainingLocal))
		sel.Keep = append(sel.Keep, readyLocal...)
		sel.Keep = append(sel.Keep, servingLocal...)
		sel.Keep = append(sel.Keep, drainingLocal...)
		sortEndpoints(sel.Keep)
	}
	if len(sel.NewFlow) == 0 {
		sel.NewFlow = nil
	}
	if len(sel.Keep) == 0 {
		sel.Keep = nil
	}

	if policy == corev1.ServiceExternalTrafficPolicyLocal {
		sel.Announce = sel.ReadyLocal > 0 || (!sel.ReadyAnywhere && sel.ServingLocal > 0)
	} else {
		sel.Announce = sel.EligibleClusterWide
	}
	return sel
}

// trustedPod returns the name of the pod that ref names when it is a Pod in namespace
// (the namespace of the slice, which is the Service's), else "". An EndpointSlice can be
// written by anyone allowed to write one in the Service's namespace, with any address and
// targetRef: only the pod the targetRef names, in that namespace, registered by the CNI
// plugin with that address, is trusted to be the endpoint.
func trustedPod(namespace string, ref *endpoints.TargetRef) string {
	if ref == nil || (ref.Kind != "" && ref.Kind != "Pod") || (ref.Namespace != "" && ref.Namespace != namespace) {
		return ""
	}
	return ref.Name
}

func slicePorts(slice *endpoints.Slice) []Port {
	out := make([]Port, 0, len(slice.Ports))
	for _, p := range slice.Ports {
		port := Port{Protocol: corev1.ProtocolTCP}
		if p.Name != nil {
			port.Name = *p.Name
		}
		if p.Protocol != nil {
			port.Protocol = *p.Protocol
		}
		if p.Port != nil {
			port.Port = *p.Port
		}
		out = append(out, port)
	}
	slices.SortFunc(out, func(a, b Port) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		if c := strings.Compare(string(a.Protocol), string(b.Protocol)); c != 0 {
			return c
		}
		return int(a.Port) - int(b.Port)
	})
	return out
}

func portsKey(ports []Port) string {
	var b strings.Builder
	for _, p := range ports {
		b.WriteString(p.Name)
		b.WriteByte('/')
		b.WriteString(string(p.Protocol))
		b.WriteByte('/')
		b.WriteString(strconv.Itoa(int(p.Port)))
		b.WriteByte(',')
	}
	return b.String()
}

func sortEndpoints(eps []Endpoint) {
	slices.SortFunc(eps, func(a, b Endpoint) int {
		if c := a.IP.Compare(b.IP); c != 0 {
			return c
		}
		return strings.Compare(portsKey(a.Ports), portsKey(b.Ports))
	})
}
