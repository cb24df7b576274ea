package datapath

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"

	"github.com/bgplb/bgplb/daemon/eligibility"
)

// ServicePort is one frontend port of a Service.
type ServicePort struct {
	Name     string
	Protocol corev1.Protocol
	Port     int32
}

// ServiceBackends is the datapath's desired state for one Service on this node, the input
// of Manager.SetService (daemon/announce computes it).
type ServiceBackends struct {
	// VIPs are the Service's ingress IPs.
	VIPs []netip.Addr
	// Ports are the Service's ports (frontend). Backend target ports come from
	// the endpoints' Ports matched by name.
	Ports []ServicePort
	// Local is true for externalTrafficPolicy Local (no local backend: drop), false for
	// Cluster (no local backend: hand to the kernel stack).
	Local bool
	// SourceRanges are the allowed client prefixes (servicespec.ParseSourceRanges: the
	// field, else the legacy annotation). Empty allows everyone unless RestrictSources.
	SourceRanges []netip.Prefix
	// RestrictSources enforces SourceRanges even when it is empty (then no client may
	// connect): set whenever the Service gives ranges, and alone when one of them cannot
	// be parsed (fail closed).
	RestrictSources bool
	// Announced is true when this node announces the VIPs (the datapath then marks them,
	// e.g. to answer ICMP echo).
	Announced bool
	// NewFlow are the local endpoints taking new flows; Keep those whose established flows
	// are kept (a superset), as computed by eligibility.SelectEndpoints.
	NewFlow []eligibility.LocalEndpoint
	Keep    []eligibility.LocalEndpoint
}
