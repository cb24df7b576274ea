package serviceclass

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/bgplb/bgplb/daemon/eligibility"
	"github.com/bgplb/bgplb/daemon/eligibility/plugins/names"
	"github.com/bgplb/bgplb/daemon/servicespec"
)

// Name of the plugin.
const Name = names.ServiceClass

// DefaultClass is the class claimed when args name none.
const DefaultClass = "bgplb.io/bgp"

// Reasons.
const (
	ReasonNotLoadBalancer = "NotLoadBalancer"
	ReasonNotOurClass     = "NotOurClass"
	ReasonNoIngressIP     = "NoIngressIP"
)

// Args configure the plugin.
type Args struct {
	// Class is the loadBalancerClass we handle (default "bgplb.io/bgp").
	Class string `json:"class,omitempty"`
	// DefaultClass also claims LoadBalancer Services without a class.
	DefaultClass bool `json:"defaultClass,omitempty"`
}

// ServiceClass is the plugin.
type ServiceClass struct {
	args Args
}

var _ eligibility.PreFilterPlugin = &ServiceClass{}

// New validates args and returns the plugin.
func New(_ context.Context, raw json.RawMessage, _ eligibility.Handle) (eligibility.Plugin, error) {
	var args Args
	if err := eligibility.DecodeArgs(raw, &args); err != nil {
		return nil, err
	}
	if args.Class == "" {
		args.Class = DefaultClass
	}
	if errs := validation.IsQualifiedName(args.Class); len(errs) > 0 {
		return nil, fmt.Errorf("class: invalid value %q: %s", args.Class, errs[0])
	}
	return &ServiceClass{args: args}, nil
}

// Name implements eligibility.Plugin.
func (p *ServiceClass) Name() string { return Name }

// PreFilter implements eligibility.PreFilterPlugin.
func (p *ServiceClass) PreFilter(_ context.Context, _ *eligibility.CycleState, in *eligibility.Input) *eligibility.Status {
	svc := in.Service
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return eligibility.NewStatus(eligibility.Ineligible, ReasonNotLoadBalancer, fmt.Sprintf("service type is %q", svc.Spec.Type))
	}
	if !p.Ours(svc) {
		class := "<none>"
		if svc.Spec.LoadBalancerClass != nil {
			class = *svc.Spec.LoadBalancerClass
		}
		return eligibility.NewStatus(eligibility.Ineligible, ReasonNotOurClass, fmt.Sprintf("loadBalancerClass %s is not %s", class, p.args.Class))
	}
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ing.IP != "" {
			return nil
		}
	}
	return eligibility.NewStatus(eligibility.Ineligible, ReasonNoIngressIP, "no ingress IP allocated yet")
}

// Ours reports whether svc's class is ours (ignoring the type and ingress).
func (p *ServiceClass) Ours(svc *corev1.Service) bool {
	return servicespec.Class{Name: p.args.Class, Default: p.args.DefaultClass}.Owns(svc)
}
