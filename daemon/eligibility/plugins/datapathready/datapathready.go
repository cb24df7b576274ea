package datapathready

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/bgplb/bgplb/daemon/eligibility"
	"github.com/bgplb/bgplb/daemon/eligibility/plugins/names"
)

// Name of the plugin.
const Name = names.DatapathReady

// DatapathReady is the plugin.
type DatapathReady struct {
	registry eligibility.EndpointRegistry
}

var _ eligibility.PreFilterPlugin = &DatapathReady{}

// New returns the plugin; it takes no args and needs the handle's endpoint registry.
func New(_ context.Context, raw json.RawMessage, h eligibility.Handle) (eligibility.Plugin, error) {
	if err := eligibility.NoArgs(raw); err != nil {
		return nil, err
	}
	if h == nil || h.Endpoints() == nil {
		return nil, errors.New("needs the CNI endpoint registry (disable it for the kube-proxy datapath mode)")
	}
	return &DatapathReady{registry: h.Endpoints()}, nil
}

// Name implements eligibility.Plugin.
func (p *DatapathReady) Name() string { return Name }

// PreFilter implements eligibility.PreFilterPlugin.
func (p *DatapathReady) PreFilter(_ context.Context, state *eligibility.CycleState, _ *eligibility.Input) *eligibility.Status {
	state.AddEndpointPredicate(p.registry.Registered)
	return nil
}
