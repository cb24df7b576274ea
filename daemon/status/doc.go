// Package status makes the daemon explainable through the API: "why is my VIP not
// announced?" is answered by kubectl, not by logs.
//
// NodeStateWriter keeps this node's BGPNodeState (named after the node, written only by
// this node's daemon) equal to what the speaker and the announcer report: per BGPPeer the
// session state, uptime, last error in words and prefixes sent, and per announced prefix
// the Services behind it and the established peers it goes to (all of them, or those a
// BGPAdvertisement.peerSelector picked). Writes are coalesced and rate limited, and happen only when the
// status changed.
//
// Aggregator runs on the leader: from every node's BGPNodeState (cached as a NodeSummary:
// the sessions and which Services the node announces, not its ~10k prefixes) it derives the
// bgplb.io/Announced condition of each Service of our class (reason Announced,
// NoEligibleEndpoints, NoMatchingAdvertisement, NoPeers or SessionsDown; the message counts
// nodes and sessions). An advertisement whose peerSelector matches no BGPPeer counts as
// not matching; a node that announces a prefix only to peers whose sessions are down
// counts as SessionsDown. It never writes to a Service of another class.
package status
