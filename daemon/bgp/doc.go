// Package bgp is the node's BGP speaker and the only package that imports GoBGP
// (github.com/osrg/gobgp/v3, used as a library). Callers see the small Speaker interface;
// bgptest has a fake for their unit tests.
//
// Invariants (docs/design.md decision 7):
//   - nothing is imported from peers: a global import policy rejects every received path;
//   - only prefixes inside the allowed set (SetAllowedPrefixes: the VIP pools) are ever
//     announced; the check lives here, not only upstream, and shrinking the set withdraws
//     what fell outside it;
//   - paths are withdrawn by path (DeletePath with the NLRI), never by UUID, which in
//     GoBGP v3 scans the whole table.
//
// Per-peer export: a Path with PeerAttributes reaches only the peers it lists, each with
// its own attributes. GoBGP has per-neighbour policies only for route-server clients, so
// such paths carry a tag (a reserved large community) and one global export policy per
// distinct set of per-peer rules matches neighbour sets and the tag, rewrites what differs
// between peers, strips the tag and rejects the rest (export.go). Changes reach only the
// affected sessions as UPDATEs and withdrawals; no session is reset.
//
// Next hop: paths are originated with an unspecified next hop (0.0.0.0 / ::); GoBGP
// replaces it with the local address of each session, so a router sees the node's own
// fabric address on that peering. A peer gets the address family of its own address
// (IPv4 peer: ipv4-unicast; IPv6 peer: ipv6-unicast via MP-BGP with a v6 next hop), so
// v6 VIPs need a v6 peering.
//
// Graceful restart: Stop(ctx, true) returns without StopBgp, so no Cease is sent; the
// caller must then exit the process, which closes the TCP sessions and lets GR-capable
// peers keep our routes as stale until we are back and send End-of-RIB.
//
// Peer errors: GoBGP reports why a session is not up only in its log stream, so the klog
// adapter given to GoBGP also records, per neighbour, the last connect error ("connect:
// connection refused") or NOTIFICATION ("OPEN: bad peer AS"), exposed in PeerStatus.
package bgp
