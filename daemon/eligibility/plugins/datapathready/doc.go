// Package datapathready implements the DatapathReady PreFilter plugin: a local endpoint
// is eligible only when the bgplb CNI plugin registered its pod on this node (the eBPF
// datapath can reach it). It adds the registry lookup as an endpoint predicate; the
// TrafficPolicy filter then sees only registered local endpoints.
//
// Kube-proxy datapath mode: disable this plugin (plugins.preFilter.disabled:
// [{name: DatapathReady}]) on clusters where bgplb only announces and kube-proxy (or the
// primary CNI's service handling) delivers VIP traffic. Every local endpoint the
// EndpointSlices list then counts, whether or not the bgplb CNI plugin is chained.
package datapathready
