package endpointweight

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/bgplb/bgplb/daemon/eligibility"
	"github.com/bgplb/bgplb/daemon/eligibility/plugins/names"
)

// Name of the plugin.
const Name = names.EndpointWeight

// EndpointWeight is the plugin.
type EndpointWeight struct{}

var _ eligibility.ScorePlugin = &EndpointWeight{}

// New returns the plugin; it takes no args.
func New(_ context.Context, raw json.RawMessage, _ eligibility.Handle) (eligibility.Plugin, error) {
	if err := eligibility.NoArgs(raw); err != nil {
		return nil, err
	}
	return &EndpointWeight{}, nil
}

// Name implements eligibility.Plugin.
func (p *EndpointWeight) Name() string { return Name }

// Score implements eligibility.ScorePlugin.
func (p *EndpointWeight) Score(_ context.Context, state *eligibility.CycleState, _ *eligibility.Input) (int64, *eligibility.Status) {
	sel := state.Selection()
	if sel == nil {
		return 0, eligibility.AsStatus(fmt.Errorf("score %s: no endpoint selection in cycle state", Name))
	}
	return int64(len(sel.NewFlow)), nil
}
