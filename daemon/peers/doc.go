// Package peers configures this node's BGP speaker from the cluster: its neighbours (the
// BGPPeers whose nodeSelector matches the node, passwords from Secrets in the daemon's
// namespace), the prefixes it may announce (the pools' blocks, plus the node's pod CIDRs
// when they are exported) and, with ExportPodCIDRs, the pod CIDR routes themselves.
//
// The Reconciler has a work queue of its own (daemon/app subscribes it to Node, Secret,
// pool and BGPPeer changes under the one key Key); Sync is idempotent and makes the
// speaker match the caches. A BGPPeer that cannot be configured (missing password Secret,
// invalid nodeSelector, an address another BGPPeer already uses) is left out and reported
// by Problems, never brought up half-configured; of two BGPPeers with one address the
// older keeps its session.
//
// The Service announcer (daemon/announce) routes per peer (BGPAdvertisement.peerSelector):
// it reads the configured peers with their labels from Configured, and when they change
// (a label edit touches no session) the function set by OnPeersChanged runs so the
// announcer re-merges shared VIPs and every Service is synced again.
//
// On start daemon/app calls SyncAllowedPrefixes, syncs every Service, and only then Sync,
// so a graceful-restart peer receives the complete table before End-of-RIB.
package peers
