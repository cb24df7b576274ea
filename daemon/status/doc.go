// Package status makes the daemon explainable through the API: "why is my VIP not
// announced?" is answered by kubectl, not by logs (docs/design.md, "Where status lives").
//
// NodeStateWriter keeps this node's BGPNodeState (named after the node, written only by
// this node's daemon) equal to what the speaker, the announcer and the datapath report:
// per BGPPeer the session state, uptime, last error in words and prefixes sent; the
// counts of announced IPv4/IPv6 prefixes; the datapath summary; at most
// v1alpha1.MaxNodeStateErrors current errors (Errors keeps them per work-queue key). The
// object never lists prefixes or Services, so its size does not grow with them. Writes
// are coalesced and rate limited, and happen only when the status changed.
//
// Aggregator runs on the leader. For each Service of our class with an IP it calls
// announce.PlanService for every Node, with an eligibility Runner per node (built by the
// EvaluatorFactory from the node's profile, reading the node's CNI registrations and
// sessions from its BGPNodeState), and writes the bgplb.io/Announced condition: reason
// Announced naming the nodes whose plan announces to an established peer, otherwise
// NoPeers, SessionsDown, IPOutsidePools, NoMatchingAdvertisement or NoEligibleEndpoints.
// It also writes the BGPPeers' Established and Invalid conditions from the nodes'
// sessions. It never writes to a Service of another class.
package status
