// Package datapath programs the eBPF maps of package bpf from the announcer's per-Service
// desired state (ServiceBackends, its input type, computed by the same eligibility predicate the
// advertiser uses) and attaches the uplink program to the node's uplink interfaces.
//
// Manager.SetService is idempotent and diff-based: for one Service it writes backends
// first, then frontends ((VIP, port, protocol) → Maglev set of the endpoints taking new
// flows; endpoints that only keep established flows stay in lb_backends), then marks the
// VIPs this node announces; removals go the other way round (VIP marks, frontends, then
// backends no frontend references). Backends are shared between Services by (pod address,
// target port, host ifindex) and reference counted, as are VIP marks of shared VIPs.
//
// Restarts keep flows: the maps are pinned, so New adopts the frontends and backends it
// finds (keeping their ids, which conntrack entries name) and Prune, called once after the
// first full sync, removes only what no Service claimed.
//
// Only this package and bpf import cilium/ebpf (through bpf). --datapath=false means no
// Manager at all.
package datapath
