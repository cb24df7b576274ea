package config

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/bgplb/bgplb/bpf"
	"github.com/bgplb/bgplb/daemon/eligibility"
	"github.com/bgplb/bgplb/daemon/eligibility/plugins"
	"github.com/bgplb/bgplb/daemon/eligibility/plugins/names"
	"github.com/bgplb/bgplb/daemon/registry/api"
)

// Version and kind of the configuration file.
const (
	APIVersion = "bgplb.io/v1alpha1"
	Kind       = "DaemonConfiguration"
)

// Defaults (the shared contracts of the team brief).
const (
	DefaultClass      = "bgplb.io/bgp"
	DefaultASN        = 64513
	DefaultListenPort = -1
	DefaultSocket     = api.DefaultSocket
	DefaultRecordsDir = api.DefaultRecordsDir
	DefaultBPFPinDir  = bpf.DefaultPinDir
)

// DaemonConfiguration is the file format (v1alpha1).
type DaemonConfiguration struct {
	APIVersion   string               `json:"apiVersion"`
	Kind         string               `json:"kind"`
	Class        string               `json:"class,omitempty"`
	DefaultClass bool                 `json:"defaultClass,omitempty"`
	BGP          BGPConfiguration     `json:"bgp,omitempty"`
	Paths        PathsConfiguration   `json:"paths,omitempty"`
	Plugins      PluginsConfiguration `json:"plugins,omitempty"`
	PluginConfig []PluginConfigEntry  `json:"pluginConfig,omitempty"`
}

// BGPConfiguration holds the BGP defaults.
type BGPConfiguration struct {
	ASN        uint32 `json:"asn,omitempty"`
	RouterID   string `json:"routerID,omitempty"`
	ListenPort *int32 `json:"listenPort,omitempty"`
}

// PathsConfiguration holds the node-local paths.
type PathsConfiguration struct {
	Socket     string `json:"socket,omitempty"`
	RecordsDir string `json:"recordsDir,omitempty"`
	BPFPinDir  string `json:"bpfPinDir,omitempty"`
}

// PluginsConfiguration holds one plugin set per extension point.
type PluginsConfiguration struct {
	PreFilter PluginSetConfiguration `json:"preFilter,omitempty"`
	Filter    PluginSetConfiguration `json:"filter,omitempty"`
	Score     PluginSetConfiguration `json:"score,omitempty"`
}

// PluginSetConfiguration enables and disables plugins of one extension point.
type PluginSetConfiguration struct {
	Enabled  []PluginReference `json:"enabled,omitempty"`
	Disabled []PluginReference `json:"disabled,omitempty"`
}

// PluginReference names a plugin; weight is for score plugins only.
type PluginReference struct {
	Name   string `json:"name"`
	Weight *int64 `json:"weight,omitempty"`
}

// PluginConfigEntry carries one plugin's args.
type PluginConfigEntry struct {
	Name string          `json:"name"`
	Args json.RawMessage `json:"args,omitempty"`
}

// BGP is the validated BGP part of Config.
type BGP struct {
	// ASN is the local AS used when a BGPPeer names no localASN.
	ASN uint32
	// RouterID is the BGP identifier; invalid (zero) means "use the node's IPv4 address".
	RouterID netip.Addr
	// ListenPort is -1 (do not listen) or 1–65535.
	ListenPort int32
}

// Paths is the validated paths part of Config.
type Paths struct {
	Socket     string
	RecordsDir string
	BPFPinDir  string
}

// Config is the validated, defaulted configuration. It is immutable: fields are values
// and EligibilityProfile returns a copy.
type Config struct {
	Class        string
	DefaultClass bool
	BGP          BGP
	Paths        Paths
	profile      eligibility.Profile
}

// EligibilityProfile returns (a copy of) the merged eligibility profile, ready for
// eligibility.NewRunner with plugins.NewDefaultRegistry().
func (c *Config) EligibilityProfile() eligibility.Profile {
	cp := func(s eligibility.PluginSet) eligibility.PluginSet {
		return eligibility.PluginSet{Enabled: append([]eligibility.PluginRef(nil), s.Enabled...)}
	}
	out := eligibility.Profile{Plugins: eligibility.Plugins{
		PreFilter: cp(c.profile.Plugins.PreFilter),
		Filter:    cp(c.profile.Plugins.Filter),
		Score:     cp(c.profile.Plugins.Score),
	}}
	for _, pc := range c.profile.PluginConfig {
		out.PluginConfig = append(out.PluginConfig, eligibility.PluginConfig{Name: pc.Name, Args: bytes.Clone(pc.Args)})
	}
	return out
}

// Default returns the configuration used when no file is given.
func Default() *Config {
	c, err := Parse([]byte("apiVersion: " + APIVersion + "\nkind: " + Kind + "\n"))
	if err != nil {
		panic(fmt.Sprintf("default configuration is invalid: %v", err))
	}
	return c
}

// Load reads and validates the configuration file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("load config file %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes data strictly (unknown fields are errors) and validates it. The error
// joins one error per problem, each prefixed with the field path.
func Parse(data []byte) (*Config, error) {
	var dc DaemonConfiguration
	if err := yaml.UnmarshalStrict(data, &dc); err != nil {
		return nil, fmt.Errorf("decode %s: %w", Kind, err)
	}
	return validate(&dc)
}

// errs collects field errors.
type errs []error

func (e *errs) add(field, format string, args ...any) {
	*e = append(*e, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
}

func validate(dc *DaemonConfiguration) (*Config, error) {
	var el errs
	if dc.APIVersion != APIVersion {
		el.add("apiVersion", "unsupported value %q, want %q", dc.APIVersion, APIVersion)
	}
	if dc.Kind != Kind {
		el.add("kind", "unsupported value %q, want %q", dc.Kind, Kind)
	}

	c := &Config{Class: dc.Class, DefaultClass: dc.DefaultClass}
	if c.Class == "" {
		c.Class = DefaultClass
	}
	if msgs := validation.IsQualifiedName(c.Class); len(msgs) > 0 {
		el.add("class", "invalid value %q: %s", c.Class, msgs[0])
	}

	c.BGP.ASN = dc.BGP.ASN
	if c.BGP.ASN == 0 {
		c.BGP.ASN = DefaultASN
	}
	if dc.BGP.RouterID != "" {
		a, err := netip.ParseAddr(dc.BGP.RouterID)
		if err != nil || !a.Is4() {
			el.add("bgp.routerID", "invalid value %q: must be an IPv4 address", dc.BGP.RouterID)
		} else {
			c.BGP.RouterID = a
		}
	}
	c.BGP.ListenPort = DefaultListenPort
	if p := dc.BGP.ListenPort; p != nil {
		if *p != -1 && (*p < 1 || *p > 65535) {
			el.add("bgp.listenPort", "invalid value %d: must be -1 (do not listen) or 1-65535", *p)
		}
		c.BGP.ListenPort = *p
	}

	pathField := func(field, v, def string) string {
		if v == "" {
			return def
		}
		if !filepath.IsAbs(v) {
			el.add(field, "invalid value %q: must be an absolute path", v)
		}
		return filepath.Clean(v)
	}
	c.Paths = Paths{
		Socket:     pathField("paths.socket", dc.Paths.Socket, DefaultSocket),
		RecordsDir: pathField("paths.recordsDir", dc.Paths.RecordsDir, DefaultRecordsDir),
		BPFPinDir:  pathField("paths.bpfPinDir", dc.Paths.BPFPinDir, DefaultBPFPinDir),
	}

	c.profile = validateProfile(dc, c, &el)
	if len(el) > 0 {
		return nil, errors.Join(el...)
	}
	return c, nil
}

// stubRegistry lets plugin factories that need the endpoint registry validate their args.
type stubRegistry struct{}

func (stubRegistry) Registered(string, string, netip.Addr) bool { return true }

func validateProfile(dc *DaemonConfiguration, c *Config, el *errs) eligibility.Profile {
	reg := plugins.NewDefaultRegistry()
	handle := eligibility.NewHandle("config-validation", stubRegistry{}, nil)

	// Instantiate each plugin once with its args: this validates the args and tells
	// which extension points the plugin implements.
	args := map[string]json.RawMessage{} // plugin name -> args
	var pluginConfig []eligibility.PluginConfig
	for i, pc := range dc.PluginConfig {
		field := fmt.Sprintf("pluginConfig[%d]", i)
		switch {
		case pc.Name == "":
			el.add(field+".name", "required")
			continue
		case reg[pc.Name] == nil:
			el.add(field+".name", "unknown plugin %q", pc.Name)
			continue
		case pc.Name == names.ServiceClass:
			el.add(field+".name", "%s takes its args from class and defaultClass at the top level", pc.Name)
			continue
		}
		if _, dup := args[pc.Name]; dup {
			el.add(field+".name", "duplicate entry for plugin %q", pc.Name)
			continue
		}
		args[pc.Name] = pc.Args
		pluginConfig = append(pluginConfig, eligibility.PluginConfig{Name: pc.Name, Args: pc.Args})
	}
	classArgs, err := json.Marshal(map[string]any{"class": c.Class, "defaultClass": c.DefaultClass})
	if err != nil {
		el.add("class", "encode ServiceClass args: %v", err)
	}
	args[names.ServiceClass] = classArgs

	instances := map[string]eligibility.Plugin{} // plugin name -> instance (nil when its args failed)
	instance := func(name, argsField string) (eligibility.Plugin, bool) {
		if p, ok := instances[name]; ok {
			return p, p != nil
		}
		p, err := reg[name](context.Background(), args[name], handle)
		if err != nil {
			el.add(argsField, "%v", err)
			instances[name] = nil
			return nil, false
		}
		instances[name] = p
		return p, true
	}
	argsFieldOf := func(name string) string {
		for i, pc := range dc.PluginConfig {
			if pc.Name == name {
				return fmt.Sprintf("pluginConfig[%d].args", i)
			}
		}
		if name == names.ServiceClass {
			return "class"
		}
		return fmt.Sprintf("plugins (%s)", name)
	}

	defaults := plugins.DefaultPlugins()
	type point struct {
		field      string
		set        PluginSetConfiguration
		defaults   eligibility.PluginSet
		implements func(eligibility.Plugin) bool
		name       string
	}
	points := []point{
		{"plugins.preFilter", dc.Plugins.PreFilter, defaults.PreFilter, func(p eligibility.Plugin) bool {
			_, ok := p.(eligibility.PreFilterPlugin)
			return ok
		}, eligibility.PreFilterExtensionPoint},
		{"plugins.filter", dc.Plugins.Filter, defaults.Filter, func(p eligibility.Plugin) bool {
			_, ok := p.(eligibility.FilterPlugin)
			return ok
		}, eligibility.FilterExtensionPoint},
		{"plugins.score", dc.Plugins.Score, defaults.Score, func(p eligibility.Plugin) bool {
			_, ok := p.(eligibility.ScorePlugin)
			return ok
		}, eligibility.ScoreExtensionPoint},
	}
	var merged eligibility.Plugins
	for _, pt := range points {
		var custom eligibility.PluginSet
		seen := map[string]bool{}
		for i, ref := range pt.set.Enabled {
			field := fmt.Sprintf("%s.enabled[%d]", pt.field, i)
			if !checkName(el, field+".name", ref.Name, reg, false) {
				continue
			}
			if seen[ref.Name] {
				el.add(field+".name", "plugin %q listed twice", ref.Name)
				continue
			}
			seen[ref.Name] = true
			var weight int64
			if ref.Weight != nil {
				if pt.name != eligibility.ScoreExtensionPoint {
					el.add(field+".weight", "only score plugins take a weight")
				} else if *ref.Weight < 1 || *ref.Weight > 100 {
					el.add(field+".weight", "invalid value %d: must be 1-100", *ref.Weight)
				}
				weight = *ref.Weight
			}
			custom.Enabled = append(custom.Enabled, eligibility.PluginRef{Name: ref.Name, Weight: weight})
		}
		for i, ref := range pt.set.Disabled {
			field := fmt.Sprintf("%s.disabled[%d]", pt.field, i)
			if !checkName(el, field+".name", ref.Name, reg, true) {
				continue
			}
			if ref.Weight != nil {
				el.add(field+".weight", "a disabled plugin takes no weight")
			}
			custom.Disabled = append(custom.Disabled, eligibility.PluginRef{Name: ref.Name})
		}
		set := eligibility.MergePluginSet(pt.defaults, custom)
		for _, ref := range set.Enabled {
			p, ok := instance(ref.Name, argsFieldOf(ref.Name))
			if !ok {
				continue
			}
			if !pt.implements(p) {
				i := indexOf(pt.set.Enabled, ref.Name)
				el.add(fmt.Sprintf("%s.enabled[%d].name", pt.field, i), "plugin %q is not a %s plugin", ref.Name, pt.name)
			}
		}
		switch pt.name {
		case eligibility.PreFilterExtensionPoint:
			merged.PreFilter = set
		case eligibility.FilterExtensionPoint:
			merged.Filter = set
		case eligibility.ScoreExtensionPoint:
			merged.Score = set
		}
	}
	for i, pc := range dc.PluginConfig {
		if _, ok := instances[pc.Name]; !ok && reg[pc.Name] != nil && pc.Name != names.ServiceClass {
			el.add(fmt.Sprintf("pluginConfig[%d].name", i), "plugin %q is not enabled at any extension point", pc.Name)
		}
	}
	if _, ok := instances[names.ServiceClass]; ok {
		pluginConfig = append([]eligibility.PluginConfig{{Name: names.ServiceClass, Args: classArgs}}, pluginConfig...)
	}
	return eligibility.Profile{Plugins: merged, PluginConfig: pluginConfig}
}

func checkName(el *errs, field, name string, reg eligibility.Registry, allowStar bool) bool {
	switch {
	case name == "":
		el.add(field, "required")
		return false
	case allowStar && name == "*":
		return true
	case reg[name] == nil:
		el.add(field, "unknown plugin %q", name)
		return false
	}
	return true
}

func indexOf(refs []PluginReference, name string) int {
	for i, r := range refs {
		if r.Name == name {
			return i
		}
	}
	return -1
}
