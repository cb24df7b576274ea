package trafficpolicy

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/bgplb/bgplb/daemon/eligibility"
	"github.com/bgplb/bgplb/daemon/eligibility/plugins/datapathready"
	"github.com/bgplb/bgplb/daemon/eligibility/plugins/names"
)

// Name of the plugin.
const Name = names.TrafficPolicy

// ReasonNoEligibleEndpoints is returned when the policy's endpoint condition fails.
const ReasonNoEligibleEndpoints = "NoEligibleEndpoints"

// TrafficPolicy is the plugin.
type TrafficPolicy struct{}

var _ eligibility.FilterPlugin = &TrafficPolicy{}

// New returns the plugin; it takes no args.
func New(_ context.Context, raw json.RawMessage, _ eligibility.Handle) (eligibility.Plugin, error) {
	if err := eligibility.NoArgs(raw); err != nil {
		return nil, err
	}
	return &TrafficPolicy{}, nil
}

// Name implements eligibility.Plugin.
func (p *TrafficPolicy) Name() string { return Name }

// Filter implements eligibility.FilterPlugin.
func (p *TrafficPolicy) Filter(_ context.Context, state *eligibility.CycleState, in *eligibility.Input) *eligibility.Status {
	sel := state.Selection()
	if sel == nil {
		return eligibility.AsStatus(fmt.Errorf("filter %s: no endpoint selection in cycle state", Name))
	}
	if sel.Announce {
		return nil
	}
	if msg, ok := datapathready.Explain(state, in); ok {
		return eligibility.NewStatus(eligibility.Ineligible, datapathready.ReasonDatapathNotReady, msg)
	}
	if in.Service.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
		msg := fmt.Sprintf("externalTrafficPolicy Local: no ready local endpoint (%d serving local", sel.ServingLocal)
		if sel.UnregisteredLocal > 0 {
			msg += fmt.Sprintf(", %d local not registered by the CNI plugin", sel.UnregisteredLocal)
		}
		if sel.ReadyElsewhere {
			msg += ", ready endpoints exist on other nodes"
		}
		return eligibility.NewStatus(eligibility.Ineligible, ReasonNoEligibleEndpoints, msg+")")
	}
	msg := "externalTrafficPolicy Cluster: no eligible endpoint in the cluster"
	if sel.UnregisteredLocal > 0 {
		msg += fmt.Sprintf(" (%d local not registered by the CNI plugin)", sel.UnregisteredLocal)
	}
	return eligibility.NewStatus(eligibility.Ineligible, ReasonNoEligibleEndpoints, msg)
}
