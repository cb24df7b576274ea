package names

// Built-in plugin names (as written in DaemonConfiguration.plugins).
const (
	ServiceClass   = "ServiceClass"
	NodeExclusion  = "NodeExclusion"
	TrafficPolicy  = "TrafficPolicy"
	DatapathReady  = "DatapathReady"
	EndpointWeight = "EndpointWeight"
)
