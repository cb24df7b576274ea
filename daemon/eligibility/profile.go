package eligibility

import (
	"encoding/json"
	"slices"
)

// Extension point names, as used in configuration paths and metric labels.
const (
	PreFilterExtensionPoint = "PreFilter"
	FilterExtensionPoint    = "Filter"
	ScoreExtensionPoint     = "Score"
)

// PluginRef names a plugin in a PluginSet. Weight is used by the Score extension point
// only; 0 means 1.
type PluginRef struct {
	Name   string
	Weight int64
}

// PluginSet lists the plugins enabled and disabled for one extension point. In a merged
// (final) profile only Enabled is read, in order.
type PluginSet struct {
	Enabled  []PluginRef
	Disabled []PluginRef // "*" disables every default
}

// Plugins holds one PluginSet per extension point.
type Plugins struct {
	PreFilter PluginSet
	Filter    PluginSet
	Score     PluginSet
}

// PluginConfig carries the arguments of one plugin.
type PluginConfig struct {
	Name string
	Args json.RawMessage
}

// Profile is the final, merged configuration a Runner is built from.
type Profile struct {
	Plugins      Plugins
	PluginConfig []PluginConfig
}

// MergePluginSet applies custom to defaults like the kube-scheduler: defaults minus
// custom.Disabled (or none when "*" is disabled), then every custom.Enabled plugin either
// overrides the weight of the default of the same name in place or is appended.
func MergePluginSet(defaults, custom PluginSet) PluginSet {
	disabled := map[string]bool{}
	for _, p := range custom.Disabled {
		disabled[p.Name] = true
	}
	var out PluginSet
	if !disabled["*"] {
		for _, p := range defaults.Enabled {
			if !disabled[p.Name] {
				out.Enabled = append(out.Enabled, p)
			}
		}
	}
	for _, p := range custom.Enabled {
		if i := slices.IndexFunc(out.Enabled, func(q PluginRef) bool { return q.Name == p.Name }); i >= 0 {
			out.Enabled[i] = p
			continue
		}
		out.Enabled = append(out.Enabled, p)
	}
	return out
}

// MergePlugins merges each extension point with MergePluginSet.
func MergePlugins(defaults, custom Plugins) Plugins {
	return Plugins{
		PreFilter: MergePluginSet(defaults.PreFilter, custom.PreFilter),
		Filter:    MergePluginSet(defaults.Filter, custom.Filter),
		Score:     MergePluginSet(defaults.Score, custom.Score),
	}
}
