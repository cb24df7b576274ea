package datapathready

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/bgplb/bgplb/daemon/eligibility"
	"github.com/bgplb/bgplb/daemon/eligibility/plugins/names"
)

// Name of the plugin.
const Name = names.DatapathReady

// ReasonDatapathNotReady is the Filter's reason when the node would announce the Service
// but for local endpoints the CNI plugin recorded as not datapath-ready.
const ReasonDatapathNotReady = "DatapathNotReady"

// NotReadyReporter is implemented by registries that record endpoints the datapath cannot
// serve (daemon/registry.Registry); the Filter then names them. Optional.
type NotReadyReporter interface {
	// DatapathNotReady reports whether the endpoint (as in
	// eligibility.EndpointRegistry.Registered) is registered but not datapath-ready, and
	// why. Safe for concurrent use; must not block.
	DatapathNotReady(podNamespace, podName string, ip netip.Addr) (reason string, notReady bool)
}

// DatapathReady is the plugin.
type DatapathReady struct {
	node     string
	registry eligibility.EndpointRegistry
	notReady NotReadyReporter // nil when the registry does not report it
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
	p := &DatapathReady{node: h.NodeName(), registry: h.Endpoints()}
	p.notReady, _ = h.Endpoints().(NotReadyReporter)
	return p, nil
}

// Name implements eligibility.Plugin.
func (p *DatapathReady) Name() string { return Name }

// PreFilter implements eligibility.PreFilterPlugin: only registered, datapath-ready local
// endpoints are eligible.
func (p *DatapathReady) PreFilter(_ context.Context, state *eligibility.CycleState, _ *eligibility.Input) *eligibility.Status {
	state.AddEndpointPredicate(p.registry.Registered)
	state.Write(stateKey, p)
	return nil
}

// stateKey is where PreFilter leaves the plugin for Explain.
const stateKey = Name + "/explain"

// Explain names the local endpoints of in that the selection in state left out because the
// datapath cannot serve them (recorded not datapath-ready), as a message for
// ReasonDatapathNotReady; ok is false when there are none or DatapathReady did not run.
// The TrafficPolicy filter calls it when it rejects, so the reason says why.
func Explain(state *eligibility.CycleState, in *eligibility.Input) (msg string, ok bool) {
	v, found := state.Read(stateKey)
	sel := state.Selection()
	if !found || sel == nil || sel.UnregisteredLocal == 0 {
		return "", false
	}
	p := v.(*DatapathReady)
	if p.notReady == nil {
		return "", false
	}
	var pods []string
	for _, slice := range in.Slices {
		for _, ep := range slice.Endpoints {
			if ep.NodeName != p.node {
				continue
			}
			ns, name := slice.Namespace, ""
			if ref := ep.TargetRef; ref != nil && (ref.Kind == "" || ref.Kind == "Pod") {
				name = ref.Name
				if ref.Namespace != "" {
					ns = ref.Namespace
				}
			}
			for _, ip := range ep.Addresses {
				if !ip.IsValid() {
					continue // did not parse
				}
				if reason, bad := p.notReady.DatapathNotReady(ns, name, ip.Unmap()); bad {
					pods = append(pods, fmt.Sprintf("pod %s/%s: %s", ns, name, reason))
					break
				}
			}
		}
	}
	if len(pods) == 0 {
		return "", false
	}
	return fmt.Sprintf("%d local endpoint(s) not datapath-ready (%s)", len(pods), strings.Join(pods, "; ")), true
}
