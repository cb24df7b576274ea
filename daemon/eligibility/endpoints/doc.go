// Package endpoints defines the typed view of an EndpointSlice that the daemon's endpoint
// cache holds instead of the API object.
//
// A Slice is not a discovery/v1 EndpointSlice and nothing hands it out as one: it is the
// projection its consumers read — eligibility.SelectEndpoints (which endpoints are local,
// ready, serving or terminating, their pods and ports) and the DatapathReady plugin's
// explanation — with every address parsed once. Fields the daemon never reads (hostname,
// zone, hints, the targetRef's uid and resourceVersion, labels other than
// kubernetes.io/service-name, owner references) are not kept; what is kept is what the
// API server sent, not an interpretation: a condition left unset stays nil, an address
// that does not parse stays in place as the zero netip.Addr, a missing targetRef stays
// nil. Add a field only together with the consumer that reads it.
//
// daemon/watch converts each EndpointSlice with FromEndpointSlice in its informer
// transform (so 10k Services with 100k endpoints cost about a third of the heap the API
// objects did; BenchmarkCacheMemory in daemon/watch measures it) and serves the views per
// Service. Views are shared by every reader: never mutate one.
package endpoints
