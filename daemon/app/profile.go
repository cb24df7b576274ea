package app

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/bgplb/bgplb/daemon/config"
	"github.com/bgplb/bgplb/daemon/eligibility"
	"github.com/bgplb/bgplb/daemon/eligibility/plugins"
	"github.com/bgplb/bgplb/daemon/eligibility/plugins/names"
)

func newPluginRegistry() eligibility.Registry { return plugins.NewDefaultRegistry() }

// buildProfile returns the eligibility profile of the DaemonConfiguration with the
// ServiceClass args set from the effective class flags, and DatapathReady removed when the
// datapath is disabled (kube-proxy serves the VIPs, so CNI registration does not matter).
func buildProfile(dc *config.Config, class string, defaultClass, datapath bool) (eligibility.Profile, error) {
	p := dc.EligibilityProfile()
	args, err := json.Marshal(map[string]any{"class": class, "defaultClass": defaultClass})
	if err != nil {
		return p, fmt.Errorf("encode ServiceClass args: %w", err)
	}
	p.PluginConfig = slices.DeleteFunc(p.PluginConfig, func(pc eligibility.PluginConfig) bool { return pc.Name == names.ServiceClass })
	if slices.ContainsFunc(p.Plugins.PreFilter.Enabled, func(r eligibility.PluginRef) bool { return r.Name == names.ServiceClass }) {
		p.PluginConfig = append(p.PluginConfig, eligibility.PluginConfig{Name: names.ServiceClass, Args: args})
	}
	if !datapath {
		drop := func(r eligibility.PluginRef) bool { return r.Name == names.DatapathReady }
		p.Plugins.PreFilter.Enabled = slices.DeleteFunc(p.Plugins.PreFilter.Enabled, drop)
		p.Plugins.Filter.Enabled = slices.DeleteFunc(p.Plugins.Filter.Enabled, drop)
		p.Plugins.Score.Enabled = slices.DeleteFunc(p.Plugins.Score.Enabled, drop)
		p.PluginConfig = slices.DeleteFunc(p.PluginConfig, func(pc eligibility.PluginConfig) bool { return pc.Name == names.DatapathReady })
	}
	return p, nil
}
