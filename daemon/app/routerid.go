package app

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
)

// AnnotationRouterID on a Node sets that node's BGP router ID (an IPv4 address).
const AnnotationRouterID = "bgplb.io/router-id"

// nodeRouterID returns the node's BGP identifier and where it came from, in this order: the
// Node's bgplb.io/router-id annotation; the DaemonConfiguration's bgp.routerID
// (configured, one for every node); the node's IPv4 InternalIP; the low 32 bits of its
// IPv6 InternalIP (an IPv6-only node: unique as long as the nodes' addresses differ in
// their last 32 bits, as they do within one /96).
func nodeRouterID(n *corev1.Node, configured netip.Addr) (netip.Addr, string, error) {
	if v, ok := n.Annotations[AnnotationRouterID]; ok {
		a, err := netip.ParseAddr(v)
		if err != nil || !a.Is4() || a.IsUnspecified() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			return netip.Addr{}, "", fmt.Errorf("node %s: annotation %s=%q: must be an IPv4 address other than 0.0.0.0 and 255.255.255.255", n.Name, AnnotationRouterID, v)
		}
		return a, "annotation " + AnnotationRouterID, nil
	}
	if configured.IsValid() {
		return configured, "bgp.routerID", nil
	}
	if ip, ok := nodeIP(n, true); ok {
		return ip, "IPv4 InternalIP", nil
	}
	if ip, ok := nodeIP(n, false); ok {
		b := ip.As16()
		id := netip.AddrFrom4([4]byte(b[12:]))
		if !id.IsUnspecified() && id != netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			return id, "low 32 bits of the IPv6 InternalIP " + ip.String(), nil
		}
	}
	return netip.Addr{}, "", fmt.Errorf("node %s has no InternalIP to derive the BGP router ID from: set the Node annotation %s (or bgp.routerID in the DaemonConfiguration)", n.Name, AnnotationRouterID)
}
