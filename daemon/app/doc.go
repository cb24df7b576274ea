// Package app wires the node daemon bgplbd together and runs it.
//
// Options holds the command-line flags; Options.Config validates them (and the optional
// DaemonConfiguration file) into an immutable Config. Run(ctx, Config) builds every part
// explicitly — clients, informer caches (daemon/watch), the CNI endpoint registry and its
// unix socket (daemon/registry), the eligibility Runner (daemon/eligibility), the GoBGP
// speaker (daemon/bgp), the eBPF datapath (daemon/datapath, unless --datapath=false), the
// announcer (daemon/announce), the BGPNodeState writer (daemon/status) and, while this
// daemon holds the Lease, the LB-IPAM controller (daemon/lbipam) and the Announced
// condition aggregator — and runs them until ctx is done.
//
// Lifecycle: the registry is rebuilt from the durable endpoint records first (so pods added
// while the daemon was down are adopted), the caches sync, peers are configured, every
// Service is synced once, stale datapath entries from before the restart are pruned, and
// only then /readyz turns ready (health.go lists what it checks afterwards). On shutdown the speaker stops without a BGP Cease so
// graceful-restart peers keep our routes while the next daemon starts, and the eBPF maps
// and links stay pinned so established flows survive.
package app
