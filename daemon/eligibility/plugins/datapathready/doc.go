// Package datapathready implements the DatapathReady plugin. PreFilter: a local endpoint
// is eligible only when the bgplb CNI plugin registered its pod on this node and the
// datapath can serve it (the pod program is attached); it adds the registry lookup as an
// endpoint predicate, so the TrafficPolicy filter sees only those. When TrafficPolicy
// rejects and local endpoints were recorded as not datapath-ready, it asks Explain and
// rejects with reason DatapathNotReady, naming them.
//
// Kube-proxy datapath mode: disable this plugin (plugins.preFilter.disabled:
// [{name: DatapathReady}]) on clusters where bgplb only announces and kube-proxy (or the
// primary CNI's service handling) delivers VIP traffic. Every local endpoint the
// EndpointSlices list then counts, whether or not the bgplb CNI plugin is chained.
package datapathready
