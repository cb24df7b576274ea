// Package ipam is the LB-IPAM allocator: it decides which addresses of which
// LoadBalancerIPPool each LoadBalancer Service of our class gets (docs/design.md decisions
// 1, 5 and 6).
//
// It is pure: inputs are typed objects (pools, Services, namespace labels), outputs are
// Results (desired ingress IPs and the bgplb.io/IPAllocated condition) and pool statuses.
// It uses no client, informer or clock, so the leader's controller owns all I/O and the
// allocator is tested exhaustively in memory. See Allocator for the calling contract.
//
// Invariants:
//   - An address is held by at most one Service, or by several Services with the same
//     bgplb.io/sharing-key that are pairwise compatible (no (port, protocol) overlap, same
//     externalTrafficPolicy, identical selectors with Local).
//   - Service status is the source of truth: an address in a Service's status that is still
//     valid for it is kept, so rebuilding the allocator from the Services (AssignAll after a
//     restart) yields the same assignments and no status changes.
//   - A Service whose request turns invalid keeps the addresses it holds (IPAllocated
//     False with the reason) while they are still in a usable pool (keep.go).
//   - Only addresses inside a usable pool (valid and not overlapping an older pool) are
//     handed out; disabled pools keep what they gave but give nothing new.
//   - Services that are not ours (other class, no class without DefaultClass, not type
//     LoadBalancer) get Ours == false and must never be written to.
//
// Performance: pools' blocks are kept sorted and disjoint (lookup by binary search), and
// each block keeps a cursor below which every address is taken, so automatic allocation
// is amortized O(1) per Service and 10k Services take milliseconds.
package ipam
