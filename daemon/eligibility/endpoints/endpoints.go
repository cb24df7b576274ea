package endpoints

import (
	"net/netip"

	discoveryv1 "k8s.io/api/discovery/v1"
)

// Slice is the view of one EndpointSlice.
type Slice struct {
	// Namespace, Name and ResourceVersion are the slice's.
	Namespace, Name, ResourceVersion string
	// Service is the slice's kubernetes.io/service-name label ("" when it has none).
	Service string
	// AddressType is the slice's; only IPv4 and IPv6 slices keep their endpoints.
	AddressType discoveryv1.AddressType
	// Ports are the slice's ports as the API server sent them.
	Ports []discoveryv1.EndpointPort
	// Endpoints in the slice's order; nil for an FQDN slice.
	Endpoints []Endpoint
}

// Endpoint is the view of one discovery/v1 Endpoint.
type Endpoint struct {
	// Addresses in the endpoint's order, as netip.ParseAddr parsed them (not unmapped);
	// one that does not parse is the zero netip.Addr.
	Addresses []netip.Addr
	// NodeName is the endpoint's nodeName; "" when unset.
	NodeName string
	// TargetRef is the endpoint's targetRef; nil when unset.
	TargetRef *TargetRef
	// Conditions as sent, each Unset, True or False.
	Conditions Conditions
}

// Conditions are an endpoint's ready, serving and terminating conditions.
type Conditions struct {
	Ready, Serving, Terminating Condition
}

// Condition is one optional boolean condition of an endpoint.
type Condition uint8

// The values of a Condition: Unset (nil in the API object), True and False.
const (
	Unset Condition = iota
	True
	False
)

// Or returns whether c is True, or def when c is Unset.
func (c Condition) Or(def bool) bool {
	if c == Unset {
		return def
	}
	return c == True
}

func condition(p *bool) Condition {
	switch {
	case p == nil:
		return Unset
	case *p:
		return True
	default:
		return False
	}
}

// TargetRef is the part of an endpoint's targetRef the daemon reads.
type TargetRef struct {
	Kind, Namespace, Name string
}

// FromEndpointSlice returns the view of s (nil for nil). The view shares no memory with s
// except immutable strings.
func FromEndpointSlice(s *discoveryv1.EndpointSlice) *Slice {
	if s == nil {
		return nil
	}
	v := &Slice{
		Namespace: s.Namespace, Name: s.Name, ResourceVersion: s.ResourceVersion,
		Service:     s.Labels[discoveryv1.LabelServiceName],
		AddressType: s.AddressType,
	}
	if len(s.Ports) > 0 {
		v.Ports = make([]discoveryv1.EndpointPort, len(s.Ports))
		for i := range s.Ports {
			s.Ports[i].DeepCopyInto(&v.Ports[i])
		}
	}
	if s.AddressType != discoveryv1.AddressTypeIPv4 && s.AddressType != discoveryv1.AddressTypeIPv6 {
		return v
	}
	v.Endpoints = make([]Endpoint, len(s.Endpoints))
	n := 0
	for i := range s.Endpoints {
		n += len(s.Endpoints[i].Addresses)
	}
	addrs := make([]netip.Addr, n) // one array for the slice's addresses
	var nodes []string             // distinct node names of this slice: endpoints share one copy
	for i := range s.Endpoints {
		ep, out := &s.Endpoints[i], &v.Endpoints[i]
		out.Addresses, addrs = addrs[:len(ep.Addresses):len(ep.Addresses)], addrs[len(ep.Addresses):]
		for j, a := range ep.Addresses {
			out.Addresses[j], _ = netip.ParseAddr(a) // the zero Addr when it does not parse
		}
		if ep.NodeName != nil {
			out.NodeName, nodes = shared(nodes, *ep.NodeName)
		}
		out.Conditions = Conditions{Ready: condition(ep.Conditions.Ready), Serving: condition(ep.Conditions.Serving),
			Terminating: condition(ep.Conditions.Terminating)}
		if r := ep.TargetRef; r != nil {
			ref := &TargetRef{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name}
			if ref.Kind == "Pod" {
				ref.Kind = "Pod" // the constant, not a copy per endpoint
			}
			if ref.Namespace == v.Namespace {
				ref.Namespace = v.Namespace
			}
			out.TargetRef = ref
		}
	}
	return v
}

// FromEndpointSlices returns the views of ss (for tests and callers holding API objects).
func FromEndpointSlices(ss ...*discoveryv1.EndpointSlice) []*Slice {
	out := make([]*Slice, 0, len(ss))
	for _, s := range ss {
		out = append(out, FromEndpointSlice(s))
	}
	return out
}

// shared returns the element of seen equal to s (adding s when there is none), so that
// equal strings of one slice share their bytes.
func shared(seen []string, s string) (string, []string) {
	for _, x := range seen {
		if x == s {
			return x, seen
		}
	}
	return s, append(seen, s)
}
