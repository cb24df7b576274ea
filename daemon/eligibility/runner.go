package eligibility

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Runner runs the plugins of one Profile. It is immutable after NewRunner and safe for
// concurrent Evaluate calls (as long as the plugins are).
type Runner struct {
	handle    Handle
	preFilter []PreFilterPlugin
	filter    []FilterPlugin
	score     []weightedScore
}

type weightedScore struct {
	plugin ScorePlugin
	weight int64
}

// NewRunner instantiates every plugin named in profile.Plugins.*.Enabled (each once,
// even when it serves several extension points) with its args from profile.PluginConfig.
// It fails on an unknown name, a plugin that does not implement the extension point it is
// listed under, a duplicate in one extension point, a negative weight, args for a plugin
// that is not enabled, or a factory error.
func NewRunner(ctx context.Context, reg Registry, profile Profile, h Handle) (*Runner, error) {
	if h == nil {
		return nil, errors.New("create eligibility runner: nil handle")
	}
	args := map[string]json.RawMessage{} // plugin name -> args
	for _, pc := range profile.PluginConfig {
		if _, dup := args[pc.Name]; dup {
			return nil, fmt.Errorf("create eligibility runner: duplicate args for plugin %q", pc.Name)
		}
		args[pc.Name] = pc.Args
	}
	instances := map[string]Plugin{} // plugin name -> instance
	get := func(name string) (Plugin, error) {
		if p, ok := instances[name]; ok {
			return p, nil
		}
		factory, ok := reg[name]
		if !ok {
			return nil, fmt.Errorf("unknown plugin %q", name)
		}
		p, err := factory(ctx, args[name], h)
		if err != nil {
			return nil, fmt.Errorf("create plugin %q: %w", name, err)
		}
		instances[name] = p
		return p, nil
	}

	r := &Runner{handle: h}
	type point struct {
		name string
		set  PluginSet
		add  func(Plugin, PluginRef) bool
	}
	points := []point{
		{PreFilterExtensionPoint, profile.Plugins.PreFilter, func(p Plugin, _ PluginRef) bool {
			pf, ok := p.(PreFilterPlugin)
			if ok {
				r.preFilter = append(r.preFilter, pf)
			}
			return ok
		}},
		{FilterExtensionPoint, profile.Plugins.Filter, func(p Plugin, _ PluginRef) bool {
			f, ok := p.(FilterPlugin)
			if ok {
				r.filter = append(r.filter, f)
			}
			return ok
		}},
		{ScoreExtensionPoint, profile.Plugins.Score, func(p Plugin, ref PluginRef) bool {
			s, ok := p.(ScorePlugin)
			if ok {
				w := ref.Weight
				if w == 0 {
					w = 1
				}
				r.score = append(r.score, weightedScore{plugin: s, weight: w})
			}
			return ok
		}},
	}
	for _, pt := range points {
		seen := map[string]bool{}
		for _, ref := range pt.set.Enabled {
			if seen[ref.Name] {
				return nil, fmt.Errorf("create eligibility runner: plugin %q enabled twice for %s", ref.Name, pt.name)
			}
			seen[ref.Name] = true
			if ref.Weight < 0 {
				return nil, fmt.Errorf("create eligibility runner: plugin %q has negative weight %d", ref.Name, ref.Weight)
			}
			p, err := get(ref.Name)
			if err != nil {
				return nil, fmt.Errorf("create eligibility runner: %w", err)
			}
			if !pt.add(p, ref) {
				return nil, fmt.Errorf("create eligibility runner: plugin %q does not implement %s", ref.Name, pt.name)
			}
		}
	}
	for name := range args {
		if _, ok := instances[name]; !ok {
			return nil, fmt.Errorf("create eligibility runner: args given for plugin %q, which is not enabled", name)
		}
	}
	return r, nil
}

// Evaluate runs PreFilter plugins, computes the endpoint selection, runs Filter plugins
// (stopping at the first rejection) and, when all passed, sums the weighted scores. It
// returns an error (and a zero Decision) only when a plugin returned Error or an
// unexpected code; the caller should retry later.
func (r *Runner) Evaluate(ctx context.Context, in *Input) (Decision, error) {
	if in == nil || in.Service == nil {
		return Decision{}, errors.New("evaluate eligibility: nil service")
	}
	state := NewCycleState()

	for _, pl := range r.preFilter {
		st := r.runPreFilter(ctx, pl, state, in)
		switch st.Code() {
		case Success:
		case Skip:
			state.skip[pl.Name()] = true
		case Ineligible:
			st.SetPlugin(pl.Name())
			return Decision{Reason: st.Reason(), Message: st.Message(), Plugin: pl.Name()}, nil
		default:
			return Decision{}, fmt.Errorf("running %q prefilter plugin: %w", pl.Name(), st.AsError())
		}
	}

	policy := in.Service.Spec.ExternalTrafficPolicy
	sel := SelectEndpoints(policy, r.handle.NodeName(), in.Slices, state.registered())
	state.SetSelection(&sel)
	d := Decision{InScope: true, Endpoints: sel.Keep, NewFlowEndpoints: sel.NewFlow}

	for _, pl := range r.filter {
		if state.skip[pl.Name()] {
			continue
		}
		st := r.runFilter(ctx, pl, state, in)
		switch st.Code() {
		case Success, Skip:
		case Ineligible:
			st.SetPlugin(pl.Name())
			d.Reason, d.Message, d.Plugin = st.Reason(), st.Message(), pl.Name()
			return d, nil
		default:
			return Decision{}, fmt.Errorf("running %q filter plugin: %w", pl.Name(), st.AsError())
		}
	}

	for _, ws := range r.score {
		if state.skip[ws.plugin.Name()] {
			continue
		}
		score, st := r.runScore(ctx, ws.plugin, state, in)
		switch st.Code() {
		case Success:
		case Skip:
			continue
		default:
			return Decision{}, fmt.Errorf("running %q score plugin: %w", ws.plugin.Name(), st.AsError())
		}
		if score < 0 {
			return Decision{}, fmt.Errorf("running %q score plugin: negative score %d", ws.plugin.Name(), score)
		}
		d.Weight += ws.weight * score
	}

	d.Announce = true
	d.Reason = ReasonEligible
	d.Message = fmt.Sprintf("%d local endpoints take new flows, policy %s", len(sel.NewFlow), policyName(policy))
	return d, nil
}

func policyName(p corev1.ServiceExternalTrafficPolicy) string {
	if p == "" {
		return string(corev1.ServiceExternalTrafficPolicyCluster)
	}
	return string(p)
}

func (r *Runner) runPreFilter(ctx context.Context, pl PreFilterPlugin, state *CycleState, in *Input) *Status {
	start := time.Now()
	st := pl.PreFilter(ctx, state, in)
	PluginDuration.WithLabelValues(pl.Name(), PreFilterExtensionPoint, st.Code().String()).Observe(time.Since(start).Seconds())
	return st
}

func (r *Runner) runFilter(ctx context.Context, pl FilterPlugin, state *CycleState, in *Input) *Status {
	start := time.Now()
	st := pl.Filter(ctx, state, in)
	PluginDuration.WithLabelValues(pl.Name(), FilterExtensionPoint, st.Code().String()).Observe(time.Since(start).Seconds())
	return st
}

func (r *Runner) runScore(ctx context.Context, pl ScorePlugin, state *CycleState, in *Input) (int64, *Status) {
	start := time.Now()
	s, st := pl.Score(ctx, state, in)
	PluginDuration.WithLabelValues(pl.Name(), ScoreExtensionPoint, st.Code().String()).Observe(time.Since(start).Seconds())
	return s, st
}

// PluginNames returns the plugins per extension point, in run order (for status output).
func (r *Runner) PluginNames() map[string][]string {
	out := map[string][]string{}
	for _, p := range r.preFilter {
		out[PreFilterExtensionPoint] = append(out[PreFilterExtensionPoint], p.Name())
	}
	for _, p := range r.filter {
		out[FilterExtensionPoint] = append(out[FilterExtensionPoint], p.Name())
	}
	for _, p := range r.score {
		out[ScoreExtensionPoint] = append(out[ScoreExtensionPoint], p.plugin.Name())
	}
	return out
}
