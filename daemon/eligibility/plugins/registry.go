package plugins

import (
	"github.com/bgplb/bgplb/daemon/eligibility"
	"github.com/bgplb/bgplb/daemon/eligibility/plugins/datapathready"
	"github.com/bgplb/bgplb/daemon/eligibility/plugins/endpointweight"
	"github.com/bgplb/bgplb/daemon/eligibility/plugins/names"
	"github.com/bgplb/bgplb/daemon/eligibility/plugins/nodeexclusion"
	"github.com/bgplb/bgplb/daemon/eligibility/plugins/serviceclass"
	"github.com/bgplb/bgplb/daemon/eligibility/plugins/trafficpolicy"
)

// NewDefaultRegistry returns a fresh registry of every built-in plugin.
func NewDefaultRegistry() eligibility.Registry {
	return eligibility.Registry{
		names.ServiceClass:   serviceclass.New,
		names.NodeExclusion:  nodeexclusion.New,
		names.TrafficPolicy:  trafficpolicy.New,
		names.DatapathReady:  datapathready.New,
		names.EndpointWeight: endpointweight.New,
	}
}

// DefaultPlugins returns the default plugin sets: every built-in plugin, in this order.
func DefaultPlugins() eligibility.Plugins {
	return eligibility.Plugins{
		PreFilter: eligibility.PluginSet{Enabled: []eligibility.PluginRef{
			{Name: names.ServiceClass},
			{Name: names.DatapathReady},
		}},
		Filter: eligibility.PluginSet{Enabled: []eligibility.PluginRef{
			{Name: names.NodeExclusion},
			{Name: names.TrafficPolicy},
		}},
		Score: eligibility.PluginSet{Enabled: []eligibility.PluginRef{
			{Name: names.EndpointWeight, Weight: 1},
		}},
	}
}
