package eligibility

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/component-base/metrics/testutil"

	"github.com/bgplb/bgplb/daemon/eligibility/endpoints"
)

// fakePlugin implements every extension point with canned results and records calls.
type fakePlugin struct {
	name      string
	preFilter *Status
	filter    *Status
	score     int64
	scoreSt   *Status
	pred      RegisteredFunc
	calls     *[]string
}

func (p *fakePlugin) Name() string { return p.name }
func (p *fakePlugin) PreFilter(_ context.Context, s *CycleState, _ *Input) *Status {
	*p.calls = append(*p.calls, "PreFilter/"+p.name)
	if p.pred != nil {
		s.AddEndpointPredicate(p.pred)
	}
	return p.preFilter
}
func (p *fakePlugin) Filter(_ context.Context, s *CycleState, _ *Input) *Status {
	*p.calls = append(*p.calls, "Filter/"+p.name)
	if s.Selection() == nil {
		return AsStatus(errors.New("no selection"))
	}
	return p.filter
}
func (p *fakePlugin) Score(_ context.Context, _ *CycleState, _ *Input) (int64, *Status) {
	*p.calls = append(*p.calls, "Score/"+p.name)
	return p.score, p.scoreSt
}

// filterOnly implements only Filter.
type filterOnly struct{ name string }

func (p *filterOnly) Name() string                                        { return p.name }
func (p *filterOnly) Filter(context.Context, *CycleState, *Input) *Status { return nil }

func registryOf(plugins ...Plugin) Registry {
	r := Registry{}
	for _, p := range plugins {
		p := p
		if err := r.Register(p.Name(), func(context.Context, json.RawMessage, Handle) (Plugin, error) { return p, nil }); err != nil {
			panic(err)
		}
	}
	return r
}

func refs(names ...string) []PluginRef {
	out := make([]PluginRef, 0, len(names))
	for _, n := range names {
		out = append(out, PluginRef{Name: n})
	}
	return out
}

var errBoom = errors.New("boom")

func testInput() *Input {
	return &Input{
		Service: &corev1.Service{Spec: corev1.ServiceSpec{ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal}},
		Slices:  endpoints.FromEndpointSlices(slice("s", ep("198.19.1.10", thisNode, "a", readyC), ep("198.19.1.11", thisNode, "b", readyC))),
	}
}

func TestRunnerEvaluate(t *testing.T) {
	tests := []struct {
		name       string
		plugins    func(calls *[]string) []*fakePlugin
		profile    Plugins
		want       Decision
		wantCalls  []string
		wantErrIs  error
		wantErrMsg string
	}{
		{
			name: "all pass, weighted score",
			plugins: func(c *[]string) []*fakePlugin {
				return []*fakePlugin{{name: "A", calls: c, score: 2}, {name: "B", calls: c, score: 3}}
			},
			profile: Plugins{
				PreFilter: PluginSet{Enabled: refs("A")},
				Filter:    PluginSet{Enabled: refs("A", "B")},
				Score:     PluginSet{Enabled: []PluginRef{{Name: "A", Weight: 10}, {Name: "B"}}},
			},
			want:      Decision{Announce: true, Reason: ReasonEligible, Weight: 23, InScope: true},
			wantCalls: []string{"PreFilter/A", "Filter/A", "Filter/B", "Score/A", "Score/B"},
		},
		{
			name: "stop at first filter rejection",
			plugins: func(c *[]string) []*fakePlugin {
				return []*fakePlugin{
					{name: "A", calls: c, filter: NewStatus(Ineligible, "NodeExcluded", "excluded")},
					{name: "B", calls: c},
				}
			},
			profile:   Plugins{Filter: PluginSet{Enabled: refs("A", "B")}, Score: PluginSet{Enabled: refs("B")}},
			want:      Decision{Reason: "NodeExcluded", Message: "excluded", Plugin: "A", InScope: true},
			wantCalls: []string{"Filter/A"},
		},
		{
			name: "prefilter rejection takes service out of scope",
			plugins: func(c *[]string) []*fakePlugin {
				return []*fakePlugin{{name: "A", calls: c, preFilter: NewStatus(Ineligible, "NotOurClass", "foreign")}, {name: "B", calls: c}}
			},
			profile:   Plugins{PreFilter: PluginSet{Enabled: refs("A", "B")}, Filter: PluginSet{Enabled: refs("B")}},
			want:      Decision{Reason: "NotOurClass", Message: "foreign", Plugin: "A"},
			wantCalls: []string{"PreFilter/A"},
		},
		{
			name: "prefilter skip skips that plugin's filter and score",
			plugins: func(c *[]string) []*fakePlugin {
				return []*fakePlugin{
					{name: "A", calls: c, preFilter: NewStatus(Skip, ""), filter: NewStatus(Ineligible, "X"), score: 100},
					{name: "B", calls: c, score: 1},
				}
			},
			profile: Plugins{
				PreFilter: PluginSet{Enabled: refs("A")},
				Filter:    PluginSet{Enabled: refs("A", "B")},
				Score:     PluginSet{Enabled: refs("A", "B")},
			},
			want:      Decision{Announce: true, Reason: ReasonEligible, Weight: 1, InScope: true},
			wantCalls: []string{"PreFilter/A", "Filter/B", "Score/B"},
		},
		{
			name: "filter error is wrapped",
			plugins: func(c *[]string) []*fakePlugin {
				return []*fakePlugin{{name: "A", calls: c, filter: AsStatus(errBoom)}, {name: "B", calls: c}}
			},
			profile:    Plugins{Filter: PluginSet{Enabled: refs("A", "B")}},
			wantErrIs:  errBoom,
			wantErrMsg: `running "A" filter plugin: boom`,
			wantCalls:  []string{"Filter/A"},
		},
		{
			name: "unexpected code is an error",
			plugins: func(c *[]string) []*fakePlugin {
				return []*fakePlugin{{name: "A", calls: c, filter: NewStatus(Code(42), "Weird")}}
			},
			profile:    Plugins{Filter: PluginSet{Enabled: refs("A")}},
			wantErrMsg: `running "A" filter plugin: Code(42) Weird`,
			wantCalls:  []string{"Filter/A"},
		},
		{
			name: "score error is wrapped",
			plugins: func(c *[]string) []*fakePlugin {
				return []*fakePlugin{{name: "A", calls: c, scoreSt: AsStatus(errBoom)}}
			},
			profile:    Plugins{Score: PluginSet{Enabled: refs("A")}},
			wantErrIs:  errBoom,
			wantErrMsg: `running "A" score plugin: boom`,
			wantCalls:  []string{"Score/A"},
		},
		{
			name: "negative score is an error",
			plugins: func(c *[]string) []*fakePlugin {
				return []*fakePlugin{{name: "A", calls: c, score: -1}}
			},
			profile:    Plugins{Score: PluginSet{Enabled: refs("A")}},
			wantErrMsg: `running "A" score plugin: negative score -1`,
			wantCalls:  []string{"Score/A"},
		},
		{
			name: "disabled default plugin is not run",
			plugins: func(c *[]string) []*fakePlugin {
				return []*fakePlugin{{name: "A", calls: c, filter: NewStatus(Ineligible, "X")}, {name: "B", calls: c}}
			},
			profile: MergePlugins(
				Plugins{Filter: PluginSet{Enabled: refs("A", "B")}},
				Plugins{Filter: PluginSet{Disabled: refs("A")}},
			),
			want:      Decision{Announce: true, Reason: ReasonEligible, InScope: true},
			wantCalls: []string{"Filter/B"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls []string
			fakes := tt.plugins(&calls)
			ps := make([]Plugin, 0, len(fakes))
			for _, f := range fakes {
				ps = append(ps, f)
			}
			r, err := NewRunner(context.Background(), registryOf(ps...), Profile{Plugins: tt.profile}, NewHandle(thisNode, nil, nil))
			if err != nil {
				t.Fatalf("NewRunner: %v", err)
			}
			got, err := r.Evaluate(context.Background(), testInput())
			if tt.wantErrMsg != "" || tt.wantErrIs != nil {
				if err == nil {
					t.Fatalf("Evaluate: no error, want %q", tt.wantErrMsg)
				}
				if tt.wantErrIs != nil && !errors.Is(err, tt.wantErrIs) {
					t.Errorf("error %v does not wrap %v", err, tt.wantErrIs)
				}
				if tt.wantErrMsg != "" && err.Error() != tt.wantErrMsg {
					t.Errorf("error = %q, want %q", err.Error(), tt.wantErrMsg)
				}
			} else if err != nil {
				t.Fatalf("Evaluate: %v", err)
			}
			if !reflect.DeepEqual(calls, tt.wantCalls) {
				t.Errorf("calls = %v, want %v", calls, tt.wantCalls)
			}
			if err != nil {
				return
			}
			// endpoints come from SelectEndpoints when in scope
			if tt.want.InScope {
				if len(got.NewFlowEndpoints) != 2 || len(got.Endpoints) != 2 {
					t.Errorf("endpoints = %v / %v, want 2 and 2", got.NewFlowEndpoints, got.Endpoints)
				}
			} else if got.NewFlowEndpoints != nil || got.Endpoints != nil {
				t.Errorf("out-of-scope decision carries endpoints: %+v", got)
			}
			got.NewFlowEndpoints, got.Endpoints = nil, nil
			if tt.want.Announce {
				if got.Message == "" {
					t.Errorf("empty message on announce")
				}
				got.Message = ""
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decision = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestRunnerPredicateNarrowsSelection(t *testing.T) {
	var calls []string
	only := func(_, name string, _ netip.Addr) bool { return name == "a" }
	r, err := NewRunner(context.Background(), registryOf(&fakePlugin{name: "A", calls: &calls, pred: only}),
		Profile{Plugins: Plugins{PreFilter: PluginSet{Enabled: refs("A")}}}, NewHandle(thisNode, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	d, err := r.Evaluate(context.Background(), testInput())
	if err != nil {
		t.Fatal(err)
	}
	if len(d.NewFlowEndpoints) != 1 || d.NewFlowEndpoints[0].PodName != "a" {
		t.Fatalf("NewFlowEndpoints = %+v, want only pod a", d.NewFlowEndpoints)
	}
}

func TestNewRunnerErrors(t *testing.T) {
	var calls []string
	reg := registryOf(&fakePlugin{name: "A", calls: &calls}, &filterOnly{name: "F"})
	reg["Bad"] = func(context.Context, json.RawMessage, Handle) (Plugin, error) {
		return nil, errors.New("class: invalid")
	}
	tests := []struct {
		name    string
		profile Profile
		want    string
	}{
		{"unknown plugin", Profile{Plugins: Plugins{Filter: PluginSet{Enabled: refs("Nope")}}}, `unknown plugin "Nope"`},
		{"wrong extension point", Profile{Plugins: Plugins{Score: PluginSet{Enabled: refs("F")}}}, `plugin "F" does not implement Score`},
		{"duplicate", Profile{Plugins: Plugins{Filter: PluginSet{Enabled: refs("A", "A")}}}, `plugin "A" enabled twice for Filter`},
		{"negative weight", Profile{Plugins: Plugins{Score: PluginSet{Enabled: []PluginRef{{Name: "A", Weight: -2}}}}}, `negative weight -2`},
		{"factory error", Profile{Plugins: Plugins{Filter: PluginSet{Enabled: refs("Bad")}}}, `create plugin "Bad": class: invalid`},
		{"args for disabled plugin", Profile{
			Plugins:      Plugins{Filter: PluginSet{Enabled: refs("F")}},
			PluginConfig: []PluginConfig{{Name: "A", Args: json.RawMessage(`{}`)}},
		}, `args given for plugin "A", which is not enabled`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewRunner(context.Background(), reg, tt.profile, NewHandle(thisNode, nil, nil))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want containing %q", err, tt.want)
			}
		})
	}
}

func TestRegistryRegisterDuplicate(t *testing.T) {
	r := Registry{}
	f := func(context.Context, json.RawMessage, Handle) (Plugin, error) { return nil, nil }
	if err := r.Register("X", f); err != nil {
		t.Fatal(err)
	}
	if err := r.Register("X", f); err == nil {
		t.Fatal("second Register of the same name succeeded")
	}
	if err := r.Merge(Registry{"X": f}); err == nil {
		t.Fatal("Merge with a duplicate name succeeded")
	}
	if err := r.Unregister("X"); err != nil {
		t.Fatal(err)
	}
	if err := r.Unregister("X"); err == nil {
		t.Fatal("Unregister of a missing name succeeded")
	}
}

func TestMergePluginSet(t *testing.T) {
	defaults := PluginSet{Enabled: refs("A", "B", "C")}
	got := MergePluginSet(defaults, PluginSet{Enabled: []PluginRef{{Name: "B", Weight: 5}, {Name: "D"}}, Disabled: refs("C")})
	want := []PluginRef{{Name: "A"}, {Name: "B", Weight: 5}, {Name: "D"}}
	if !reflect.DeepEqual(got.Enabled, want) {
		t.Errorf("merge = %v, want %v", got.Enabled, want)
	}
	got = MergePluginSet(defaults, PluginSet{Enabled: refs("C"), Disabled: refs("*")})
	if !reflect.DeepEqual(got.Enabled, refs("C")) {
		t.Errorf("merge with * = %v, want [C]", got.Enabled)
	}
}

func TestStatusNilSafe(t *testing.T) {
	var s *Status
	if s.Code() != Success || !s.IsSuccess() || s.Reason() != "" || s.Message() != "" || s.AsError() != nil || s.Plugin() != "" {
		t.Fatal("nil status is not Success")
	}
	s.SetPlugin("x") // must not panic
	if AsStatus(nil) != nil {
		t.Fatal("AsStatus(nil) != nil")
	}
	st := AsStatus(errBoom)
	if st.Code() != Error || !errors.Is(st.AsError(), errBoom) || st.Reason() != ReasonPluginError {
		t.Fatalf("AsStatus(err) = %v", st)
	}
	st = NewStatus(Ineligible, "NodeExcluded", "a", "b")
	st.SetPlugin("NodeExclusion")
	if st.Message() != "a, b" || st.Plugin() != "NodeExclusion" || st.String() != "Ineligible NodeExcluded: a, b" {
		t.Fatalf("status = %q plugin %q", st.String(), st.Plugin())
	}
	for c, want := range map[Code]string{Success: "Success", Error: "Error", Ineligible: "Ineligible", Skip: "Skip", Code(9): "Code(9)"} {
		if c.String() != want {
			t.Errorf("Code(%d).String() = %q, want %q", int(c), c.String(), want)
		}
	}
}

func TestPluginDurationMetric(t *testing.T) {
	RegisterMetrics()
	RegisterMetrics() // idempotent
	var calls []string
	r, err := NewRunner(context.Background(), registryOf(&fakePlugin{name: "MetricProbe", calls: &calls, filter: NewStatus(Ineligible, "X")}),
		Profile{Plugins: Plugins{Filter: PluginSet{Enabled: refs("MetricProbe")}}}, NewHandle(thisNode, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := r.Evaluate(context.Background(), testInput()); err != nil {
			t.Fatal(err)
		}
	}
	vec, err := testutil.GetHistogramVecFromGatherer(legacyregistry.DefaultGatherer, "bgplb_eligibility_plugin_duration_seconds",
		map[string]string{"plugin": "MetricProbe", "extension_point": "Filter", "status": "Ineligible"})
	if err != nil {
		t.Fatal(err)
	}
	if n := vec.GetAggregatedSampleCount(); n != 3 {
		t.Fatalf("samples = %d, want 3", n)
	}
}
