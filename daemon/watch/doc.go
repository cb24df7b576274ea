// Package watch owns every informer of the daemon and the work queues fed by them.
//
// Caches holds the shared informers (Services, EndpointSlices, this node's Node, the
// Secrets of the daemon's namespace and the bgplb.io kinds) and the listers the controllers
// read. Their transform, TrimObject, drops managedFields and foreign annotations only
// (everything but bgplb.io/* and the legacy load-balancer-source-ranges annotation):
// listers return API objects as the API server sent them. EndpointSlices are the one
// exception and have no lister: a client-go Reflector lists and watches them into a store
// of typed views, *endpoints.Slice (daemon/eligibility/endpoints, shaped by eligibility,
// its consumer), indexed by Service (SlicesForService) and by the IPs of this node's
// endpoints — 100k endpoints as API objects were most of the daemon's heap, and an
// informer's index sets cost 3 MB more at 10k Services (BenchmarkCacheMemory).
//
// A Queue is client-go's typed rate-limiting work queue (with its metrics) and workers
// that call one SyncFunc, like kubernetes/sample-controller.
// Subscribe connects a Queue to the caches: event handlers only enqueue keys (a Service
// key "namespace/name", or a fixed key a controller chooses for "peers changed"); they never
// do work and never mutate cached objects. EndpointSlices map to their Service through the
// label kubernetes.io/service-name (the slice store enqueues the Services whose slices
// changed); a CNI registry change maps to the Services whose local endpoints carry one of
// the endpoint's IPs (an index over this node's slice endpoints).
//
// Callers: daemon/app builds one Caches and Subscribes the announcer and (while leader) the
// LB-IPAM controller and the Announced aggregator, which also reads every Node and
// BGPNodeState (EnableLeaderCaches). No other package touches informers.
package watch
