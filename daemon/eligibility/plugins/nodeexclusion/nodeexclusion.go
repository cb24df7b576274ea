package nodeexclusion

import (
	"context"
	"encoding/json"

	corev1 "k8s.io/api/core/v1"

	"github.com/bgplb/bgplb/daemon/eligibility"
	"github.com/bgplb/bgplb/daemon/eligibility/plugins/names"
)

// Name of the plugin.
const Name = names.NodeExclusion

// ExcludeLabel removes a node from external load balancers (well-known Kubernetes label).
const ExcludeLabel = corev1.LabelNodeExcludeBalancers

// Reasons.
const (
	ReasonNodeNotFound       = "NodeNotFound"
	ReasonNodeExcluded       = "NodeExcluded"
	ReasonNetworkUnavailable = "NetworkUnavailable"
	ReasonNodeNotReady       = "NodeNotReady"
)

// NodeExclusion is the plugin.
type NodeExclusion struct{}

var _ eligibility.FilterPlugin = &NodeExclusion{}

// New returns the plugin; it takes no args.
func New(_ context.Context, raw json.RawMessage, _ eligibility.Handle) (eligibility.Plugin, error) {
	if err := eligibility.NoArgs(raw); err != nil {
		return nil, err
	}
	return &NodeExclusion{}, nil
}

// Name implements eligibility.Plugin.
func (p *NodeExclusion) Name() string { return Name }

// Filter implements eligibility.FilterPlugin.
func (p *NodeExclusion) Filter(_ context.Context, _ *eligibility.CycleState, in *eligibility.Input) *eligibility.Status {
	node := in.Node
	if node == nil {
		return eligibility.NewStatus(eligibility.Ineligible, ReasonNodeNotFound, "this node's Node object is not known")
	}
	if _, ok := node.Labels[ExcludeLabel]; ok {
		return eligibility.NewStatus(eligibility.Ineligible, ReasonNodeExcluded, "node has label "+ExcludeLabel)
	}
	ready := false
	for _, c := range node.Status.Conditions {
		switch c.Type {
		case corev1.NodeNetworkUnavailable:
			if c.Status == corev1.ConditionTrue {
				return eligibility.NewStatus(eligibility.Ineligible, ReasonNetworkUnavailable, "node condition NetworkUnavailable is True")
			}
		case corev1.NodeReady:
			ready = c.Status == corev1.ConditionTrue
		}
	}
	if !ready {
		return eligibility.NewStatus(eligibility.Ineligible, ReasonNodeNotReady, "node condition Ready is not True")
	}
	return nil
}
