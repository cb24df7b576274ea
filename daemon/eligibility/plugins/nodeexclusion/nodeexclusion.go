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
	ReasonNodeDeleted        = "NodeDeleted"
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
	if node.DeletionTimestamp != nil {
		return eligibility.NewStatus(eligibility.Ineligible, ReasonNodeDeleted, "node is being deleted")
	}
	// Ready is deliberately not read: Ready=Unknown/False says the kubelet's heartbeat is
	// late, not that this node's network or pods are down; excluding on it would withdraw
	// every VIP when heartbeats stall cluster-wide (decision 10 of docs/design.md, the
	// reason Kubernetes' service controller stopped doing so in KEP-3458). The endpoints'
	// own readiness and this daemon's BGP session cover a node that is really down.
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeNetworkUnavailable && c.Status == corev1.ConditionTrue {
			return eligibility.NewStatus(eligibility.Ineligible, ReasonNetworkUnavailable, "node condition NetworkUnavailable is True")
		}
	}
	return nil
}
