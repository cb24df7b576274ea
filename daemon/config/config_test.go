package config

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/bgplb/bgplb/daemon/eligibility"
	"github.com/bgplb/bgplb/daemon/eligibility/plugins"
	"github.com/bgplb/bgplb/daemon/eligibility/plugins/names"
)

const header = "apiVersion: bgplb.io/v1alpha1\nkind: DaemonConfiguration\n"

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // every string must appear in the error
	}{
		{"wrong apiVersion", "apiVersion: bgplb.io/v1\nkind: DaemonConfiguration\n", []string{`apiVersion: unsupported value "bgplb.io/v1"`}},
		{"wrong kind", "apiVersion: bgplb.io/v1alpha1\nkind: Config\n", []string{`kind: unsupported value "Config"`}},
		{"unknown field", header + "clas: x\n", []string{`unknown field "clas"`}},
		{"unknown nested field", header + "bgp:\n  asnn: 1\n", []string{`unknown field "asnn"`}},
		{"bad class", header + "class: 'not a class!'\n", []string{`class: invalid value "not a class!"`}},
		{"asn too big", header + "bgp:\n  asn: 4294967296\n", []string{"decode DaemonConfiguration"}},
		{"router ID v6", header + "bgp:\n  routerID: '2001:db8::1'\n", []string{`bgp.routerID: invalid value "2001:db8::1": must be an IPv4 address`}},
		{"router ID garbage", header + "bgp:\n  routerID: 1.2.3.400\n", []string{`bgp.routerID: invalid value "1.2.3.400"`}},
		{"listen port 0", header + "bgp:\n  listenPort: 0\n", []string{"bgp.listenPort: invalid value 0"}},
		{"listen port 70000", header + "bgp:\n  listenPort: 70000\n", []string{"bgp.listenPort: invalid value 70000"}},
		{"relative socket", header + "paths:\n  socket: run/x.sock\n", []string{`paths.socket: invalid value "run/x.sock": must be an absolute path`}},
		{"relative pin dir", header + "paths:\n  bpfPinDir: bpf\n", []string{`paths.bpfPinDir: invalid value "bpf"`}},
		{"unknown plugin", header + "plugins:\n  filter:\n    enabled:\n    - name: NodeExclusion\n    - name: TrafficPolicy\n    - name: Foo\n",
			[]string{`plugins.filter.enabled[2].name: unknown plugin "Foo"`}},
		{"empty plugin name", header + "plugins:\n  score:\n    enabled:\n    - weight: 2\n", []string{"plugins.score.enabled[0].name: required"}},
		{"unknown disabled plugin", header + "plugins:\n  preFilter:\n    disabled:\n    - name: Bar\n", []string{`plugins.preFilter.disabled[0].name: unknown plugin "Bar"`}},
		{"plugin at wrong extension point", header + "plugins:\n  score:\n    enabled:\n    - name: NodeExclusion\n",
			[]string{`plugins.score.enabled[0].name: plugin "NodeExclusion" is not a Score plugin`}},
		{"plugin twice", header + "plugins:\n  filter:\n    enabled:\n    - name: TrafficPolicy\n    - name: TrafficPolicy\n",
			[]string{`plugins.filter.enabled[1].name: plugin "TrafficPolicy" listed twice`}},
		{"weight on a filter", header + "plugins:\n  filter:\n    enabled:\n    - name: TrafficPolicy\n      weight: 2\n",
			[]string{"plugins.filter.enabled[0].weight: only score plugins take a weight"}},
		{"weight 0", header + "plugins:\n  score:\n    enabled:\n    - name: EndpointWeight\n      weight: 0\n",
			[]string{"plugins.score.enabled[0].weight: invalid value 0: must be 1-100"}},
		{"args of unknown plugin", header + "pluginConfig:\n- name: Nope\n  args: {}\n", []string{`pluginConfig[0].name: unknown plugin "Nope"`}},
		{"bad args", header + "pluginConfig:\n- name: NodeExclusion\n  args: {x: 1}\n", []string{"pluginConfig[0].args: decode args: plugin takes no arguments"}},
		{"ServiceClass args", header + "pluginConfig:\n- name: ServiceClass\n  args: {class: a.b/c}\n", []string{"pluginConfig[0].name: ServiceClass takes its args from class and defaultClass"}},
		{"duplicate args", header + "pluginConfig:\n- name: TrafficPolicy\n- name: TrafficPolicy\n", []string{`pluginConfig[1].name: duplicate entry for plugin "TrafficPolicy"`}},
		{"args for disabled plugin", header + "plugins:\n  filter:\n    disabled:\n    - name: NodeExclusion\npluginConfig:\n- name: NodeExclusion\n",
			[]string{`pluginConfig[0].name: plugin "NodeExclusion" is not enabled at any extension point`}},
		{"several errors at once", header + "bgp:\n  routerID: x\n  listenPort: 0\npaths:\n  recordsDir: rel\n",
			[]string{"bgp.routerID:", "bgp.listenPort:", "paths.recordsDir:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded (%+v), want errors %v", c, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err.Error(), w)
				}
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c := Default()
	want := Config{
		Class: DefaultClass,
		BGP:   BGP{ASN: DefaultASN, ListenPort: -1},
		Paths: Paths{Socket: DefaultSocket, RecordsDir: DefaultRecordsDir, BPFPinDir: DefaultBPFPinDir},
	}
	got := *c
	got.profile = eligibility.Profile{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults = %+v, want %+v", got, want)
	}
	p := c.EligibilityProfile()
	if !reflect.DeepEqual(p.Plugins, plugins.DefaultPlugins()) {
		t.Errorf("default plugins = %+v, want %+v", p.Plugins, plugins.DefaultPlugins())
	}
	if len(p.PluginConfig) != 1 || p.PluginConfig[0].Name != names.ServiceClass || string(p.PluginConfig[0].Args) != `{"class":"bgplb.io/bgp","defaultClass":false}` {
		t.Errorf("plugin config = %+v", p.PluginConfig)
	}
}

func TestLoadFull(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	data := header + `
class: example.com/lb
defaultClass: true
bgp:
  asn: 4200000000
  routerID: 198.18.0.11
  listenPort: 1790
paths:
  socket: /run/bgplb-lab/node1/bgplbd.sock
  recordsDir: /run/bgplb-lab/node1/endpoints/
  bpfPinDir: /sys/fs/bpf/bgplb-lab/node1
plugins:
  preFilter:
    disabled:
    - name: DatapathReady
  score:
    enabled:
    - name: EndpointWeight
      weight: 5
`
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Class != "example.com/lb" || !c.DefaultClass || c.BGP.ASN != 4200000000 || c.BGP.RouterID != netip.MustParseAddr("198.18.0.11") ||
		c.BGP.ListenPort != 1790 || c.Paths.RecordsDir != "/run/bgplb-lab/node1/endpoints" || c.Paths.BPFPinDir != "/sys/fs/bpf/bgplb-lab/node1" {
		t.Errorf("config = %+v", *c)
	}
	p := c.EligibilityProfile()
	wantPre := []eligibility.PluginRef{{Name: names.ServiceClass}}
	if !reflect.DeepEqual(p.Plugins.PreFilter.Enabled, wantPre) {
		t.Errorf("preFilter = %+v, want %+v (DatapathReady disabled)", p.Plugins.PreFilter.Enabled, wantPre)
	}
	if !reflect.DeepEqual(p.Plugins.Score.Enabled, []eligibility.PluginRef{{Name: names.EndpointWeight, Weight: 5}}) {
		t.Errorf("score = %+v", p.Plugins.Score.Enabled)
	}
	// The profile builds a runner without an endpoint registry (kube-proxy datapath mode)
	// and the class args reached ServiceClass.
	if _, err := eligibility.NewRunner(context.Background(), plugins.NewDefaultRegistry(), p, eligibility.NewHandle("node1", nil, nil)); err != nil {
		t.Fatalf("NewRunner from loaded profile: %v", err)
	}
	// Immutability: changing the returned profile does not change the config.
	p.Plugins.Score.Enabled[0].Weight = 99
	if c.EligibilityProfile().Plugins.Score.Enabled[0].Weight != 5 {
		t.Error("EligibilityProfile returned shared state")
	}

	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "read config file") {
		t.Errorf("Load(missing) = %v", err)
	}
}
