// Package announce turns the cached cluster state into this node's BGP announcements and
// datapath programming, one Service at a time, as a diff against what it applied before.
//
// For a Service key, SyncService calls PlanService for this node: it evaluates the
// eligibility Runner (daemon/eligibility), matches the BGPAdvertisements that select the
// Service, its pool and the node, and derives the desired state: prefixes (/32, /128 of the ingress IPs) with their path
// attributes (communities, large communities, local preference, and with weightedECMP a
// link-bandwidth proportional to the Decision weight), plus the datapath backends. It then
// applies the difference in a fixed order so the router is never told to send traffic the
// maps cannot serve: withdraw prefixes first, then program (or clean) the datapath, then
// announce. Bookkeeping changes only after a step succeeded, so a failed step is retried by
// the work queue with nothing lost.
//
// Shared VIPs (two Services with one IP via a sharing key) are reference counted: the prefix
// is announced while at least one Service wants it, with the merged attributes (union of
// communities, highest local preference, summed weights).
//
// Per peer (BGPAdvertisement.peerSelector): when every advertisement behind a VIP selects
// all peers, the VIP is one path for every peer (bgp.Path without PeerAttributes). When one
// has a peerSelector, the path lists the configured peers that get it, each with the
// merged attributes of only the advertisements that select the Service and that peer's
// labels; a VIP no such advertisement sends to any peer is not announced (reason
// NoMatchingAdvertisement). Shared VIPs merge per peer.
//
// The configured peers and their labels come from daemon/peers (the Peers interface), which
// also sets the speaker's neighbours and allowed prefixes; when they change, PeersChanged
// re-merges the VIPs shared by Services for every peer and for selected peers.
//
// Callers: daemon/app creates one Announcer and a watch.Queue whose SyncFunc is SyncService.
// PlanService is also what the LB-IPAM leader's Announced aggregator (daemon/status) runs
// for every node. PrefixCounts feeds the BGPNodeState; State answers the daemon socket's
// GET /v1/routes.
package announce
