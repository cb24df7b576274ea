// Package plugins holds the built-in eligibility plugins, one package each, and
// NewDefaultRegistry / DefaultPlugins, the single place that lists them.
//
// Default order: PreFilter ServiceClass, DatapathReady; Filter NodeExclusion,
// TrafficPolicy; Score EndpointWeight (weight 1).
package plugins
