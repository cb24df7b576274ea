// Package lbipam is the leader-elected LB-IPAM controller: it feeds the pure allocator
// (daemon/ipam) from the informer caches and writes its decisions back — Service
// status.loadBalancer.ingress (ipMode VIP), the bgplb.io/IPAllocated condition and an
// event, each only when it changes, and the pools' status (conditions and counts).
//
// It runs only while this daemon holds the Lease (daemon/app runs the leader election), on
// one worker, so a released address is never in two statuses at once. On its first sync it
// rebuilds the allocator from every Service's status (AssignAll), so a new leader changes
// nothing that was valid. A Service that is not ours is never written to: no status, no
// condition, no event.
//
// Keys: "namespace/name" syncs one Service; PoolsKey re-reads every pool and re-assigns
// every Service (pools or namespace labels changed).
package lbipam
