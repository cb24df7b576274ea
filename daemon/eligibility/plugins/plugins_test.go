package plugins_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/daemon/eligibility"
	"github.com/bgplb/bgplb/daemon/eligibility/endpoints"
	"github.com/bgplb/bgplb/daemon/eligibility/plugins"
	"github.com/bgplb/bgplb/daemon/eligibility/plugins/datapathready"
	"github.com/bgplb/bgplb/daemon/eligibility/plugins/endpointweight"
	"github.com/bgplb/bgplb/daemon/eligibility/plugins/names"
	"github.com/bgplb/bgplb/daemon/eligibility/plugins/nodeexclusion"
	"github.com/bgplb/bgplb/daemon/eligibility/plugins/serviceclass"
	"github.com/bgplb/bgplb/daemon/eligibility/plugins/trafficpolicy"
)

const node = "node1"

// svcBuilder builds Services for table tests.
type svcBuilder struct{ svc corev1.Service }

func lbService() *svcBuilder {
	return &svcBuilder{svc: corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "svc"},
		Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeLoadBalancer,
			LoadBalancerClass:     ptr.To("bgplb.io/bgp"),
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
		},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "203.0.113.10"}}}},
	}}
}
func (b *svcBuilder) class(c *string) *svcBuilder { b.svc.Spec.LoadBalancerClass = c; return b }
func (b *svcBuilder) typ(t corev1.ServiceType) *svcBuilder {
	b.svc.Spec.Type = t
	return b
}
func (b *svcBuilder) noIngress() *svcBuilder {
	b.svc.Status.LoadBalancer.Ingress = nil
	return b
}
func (b *svcBuilder) policy(p corev1.ServiceExternalTrafficPolicy) *svcBuilder {
	b.svc.Spec.ExternalTrafficPolicy = p
	return b
}
func (b *svcBuilder) obj() *corev1.Service { return &b.svc }

func readyNode() *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: node, Labels: map[string]string{}},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: corev1.ConditionTrue},
			{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionFalse},
		}},
	}
}

func epSlice(eps ...discoveryv1.Endpoint) []*endpoints.Slice {
	return endpoints.FromEndpointSlices(&discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: "svc-abc"},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   eps,
		Ports:       []discoveryv1.EndpointPort{{Port: ptr.To[int32](80)}},
	})
}

func readyEP(ip, nodeName, pod string) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{
		Addresses:  []string{ip},
		NodeName:   ptr.To(nodeName),
		TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: pod},
		Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
	}
}

// fakeRegistry is a set of registered pod names (ns/name).
type fakeRegistry map[string]bool

func (r fakeRegistry) Registered(ns, name string, _ netip.Addr) bool { return r[ns+"/"+name] }

func TestServiceClass(t *testing.T) {
	tests := []struct {
		name       string
		args       string
		svc        *corev1.Service
		wantReason string // "" = success
	}{
		{"ours", ``, lbService().obj(), ""},
		{"foreign class", ``, lbService().class(ptr.To("example.com/internal-vip")).obj(), serviceclass.ReasonNotOurClass},
		{"nil class, explicit mode", ``, lbService().class(nil).obj(), serviceclass.ReasonNotOurClass},
		{"nil class, default-class mode", `{"defaultClass":true}`, lbService().class(nil).obj(), ""},
		{"foreign class, default-class mode", `{"defaultClass":true}`, lbService().class(ptr.To("example.com/x")).obj(), serviceclass.ReasonNotOurClass},
		{"custom class", `{"class":"example.com/mine"}`, lbService().class(ptr.To("example.com/mine")).obj(), ""},
		{"custom class, default class service", `{"class":"example.com/mine"}`, lbService().obj(), serviceclass.ReasonNotOurClass},
		{"ClusterIP", ``, lbService().typ(corev1.ServiceTypeClusterIP).obj(), serviceclass.ReasonNotLoadBalancer},
		{"NodePort", ``, lbService().typ(corev1.ServiceTypeNodePort).obj(), serviceclass.ReasonNotLoadBalancer},
		{"no ingress IP", ``, lbService().noIngress().obj(), serviceclass.ReasonNoIngressIP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := serviceclass.New(context.Background(), json.RawMessage(tt.args), nil)
			if err != nil {
				t.Fatal(err)
			}
			st := p.(eligibility.PreFilterPlugin).PreFilter(context.Background(), eligibility.NewCycleState(), &eligibility.Input{Service: tt.svc})
			checkStatus(t, st, tt.wantReason)
		})
	}
}

func TestServiceClassArgs(t *testing.T) {
	for args, want := range map[string]string{
		`{"class":"not a class!"}`: "class: invalid value",
		`{"clas":"x"}`:             `unknown field "clas"`,
		`[1]`:                      "decode args",
	} {
		if _, err := serviceclass.New(context.Background(), json.RawMessage(args), nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("args %s: err = %v, want containing %q", args, err, want)
		}
	}
}

func TestNodeExclusion(t *testing.T) {
	excluded := readyNode()
	excluded.Labels[nodeexclusion.ExcludeLabel] = ""
	netUnavailable := readyNode()
	netUnavailable.Status.Conditions[1].Status = corev1.ConditionTrue
	notReady := readyNode()
	notReady.Status.Conditions[0].Status = corev1.ConditionUnknown
	notReadyFalse := readyNode()
	notReadyFalse.Status.Conditions[0].Status = corev1.ConditionFalse
	noConditions := readyNode()
	noConditions.Status.Conditions = nil
	deleted := readyNode()
	deleted.DeletionTimestamp = &metav1.Time{}
	tests := []struct {
		name       string
		node       *corev1.Node
		wantReason string
	}{
		{"ready node", readyNode(), ""},
		{"exclude label", excluded, nodeexclusion.ReasonNodeExcluded},
		{"NetworkUnavailable=True", netUnavailable, nodeexclusion.ReasonNetworkUnavailable},
		// A late heartbeat is no reason to withdraw (no mass withdraw).
		{"Ready=Unknown", notReady, ""},
		{"Ready=False", notReadyFalse, ""},
		{"no conditions", noConditions, ""},
		{"being deleted", deleted, nodeexclusion.ReasonNodeDeleted},
		{"unknown node", nil, nodeexclusion.ReasonNodeNotFound},
	}
	p, err := nodeexclusion.New(context.Background(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := p.(eligibility.FilterPlugin).Filter(context.Background(), eligibility.NewCycleState(), &eligibility.Input{Service: lbService().obj(), Node: tt.node})
			checkStatus(t, st, tt.wantReason)
		})
	}
	if _, err := nodeexclusion.New(context.Background(), json.RawMessage(`{"x":1}`), nil); err == nil {
		t.Error("NodeExclusion accepted args")
	}
}

func TestTrafficPolicyAndWeight(t *testing.T) {
	tests := []struct {
		name       string
		policy     corev1.ServiceExternalTrafficPolicy
		slices     []*endpoints.Slice
		wantReason string
		wantScore  int64
	}{
		{"local, two ready local", corev1.ServiceExternalTrafficPolicyLocal,
			epSlice(readyEP("198.19.1.10", node, "a"), readyEP("198.19.1.11", node, "b"), readyEP("198.19.2.10", "node2", "c")), "", 2},
		{"local, only remote", corev1.ServiceExternalTrafficPolicyLocal,
			epSlice(readyEP("198.19.2.10", "node2", "c")), trafficpolicy.ReasonNoEligibleEndpoints, 0},
		{"cluster, only remote", corev1.ServiceExternalTrafficPolicyCluster,
			epSlice(readyEP("198.19.2.10", "node2", "c")), "", 0},
		{"cluster, none", corev1.ServiceExternalTrafficPolicyCluster, nil, trafficpolicy.ReasonNoEligibleEndpoints, 0},
		{"local, none", corev1.ServiceExternalTrafficPolicyLocal, nil, trafficpolicy.ReasonNoEligibleEndpoints, 0},
	}
	tp, _ := trafficpolicy.New(context.Background(), nil, nil)
	ew, _ := endpointweight.New(context.Background(), nil, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &eligibility.Input{Service: lbService().policy(tt.policy).obj(), Slices: tt.slices}
			state := eligibility.NewCycleState()
			sel := eligibility.SelectEndpoints(tt.policy, node, tt.slices, nil)
			state.SetSelection(&sel)
			checkStatus(t, tp.(eligibility.FilterPlugin).Filter(context.Background(), state, in), tt.wantReason)
			score, st := ew.(eligibility.ScorePlugin).Score(context.Background(), state, in)
			if !st.IsSuccess() || score != tt.wantScore {
				t.Errorf("score = %d %v, want %d", score, st, tt.wantScore)
			}
		})
	}
	// Without a selection both report an error rather than guessing.
	if st := tp.(eligibility.FilterPlugin).Filter(context.Background(), eligibility.NewCycleState(), &eligibility.Input{Service: lbService().obj()}); st.Code() != eligibility.Error {
		t.Errorf("filter without selection: %v, want Error", st)
	}
}

func TestDatapathReadyNeedsRegistry(t *testing.T) {
	if _, err := datapathready.New(context.Background(), nil, eligibility.NewHandle(node, nil, nil)); err == nil {
		t.Fatal("DatapathReady without a registry succeeded")
	}
}

// TestDefaultProfile runs every built-in plugin through the Runner, as the daemon does.
func TestDefaultProfile(t *testing.T) {
	reg := fakeRegistry{"default/a": true, "default/b": true}
	newRunner := func(t *testing.T, plugins eligibility.Plugins, h eligibility.Handle) *eligibility.Runner {
		t.Helper()
		r, err := eligibility.NewRunner(context.Background(), defaultRegistry(), eligibility.Profile{Plugins: plugins}, h)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	def := newRunner(t, plugins.DefaultPlugins(), eligibility.NewHandle(node, reg, nil))
	kubeProxyMode := newRunner(t, eligibility.MergePlugins(plugins.DefaultPlugins(),
		eligibility.Plugins{PreFilter: eligibility.PluginSet{Disabled: []eligibility.PluginRef{{Name: names.DatapathReady}}}}),
		eligibility.NewHandle(node, nil, nil))
	weighted := newRunner(t, eligibility.MergePlugins(plugins.DefaultPlugins(),
		eligibility.Plugins{Score: eligibility.PluginSet{Enabled: []eligibility.PluginRef{{Name: names.EndpointWeight, Weight: 3}}}}),
		eligibility.NewHandle(node, reg, nil))

	three := epSlice(readyEP("198.19.1.10", node, "a"), readyEP("198.19.1.11", node, "b"), readyEP("198.19.1.12", node, "unregistered"))
	excluded := readyNode()
	excluded.Labels[nodeexclusion.ExcludeLabel] = "true"
	tests := []struct {
		name         string
		runner       *eligibility.Runner
		in           eligibility.Input
		wantAnnounce bool
		wantReason   string
		wantPlugin   string
		wantWeight   int64
		wantNewFlow  int
		wantInScope  bool
	}{
		{"announce with registered endpoints", def, eligibility.Input{Service: lbService().obj(), Slices: three, Node: readyNode()}, true, eligibility.ReasonEligible, "", 2, 2, true},
		{"weight 3", weighted, eligibility.Input{Service: lbService().obj(), Slices: three, Node: readyNode()}, true, eligibility.ReasonEligible, "", 6, 2, true},
		{"kube-proxy mode counts unregistered", kubeProxyMode, eligibility.Input{Service: lbService().obj(), Slices: three, Node: readyNode()}, true, eligibility.ReasonEligible, "", 3, 3, true},
		{"foreign class", def, eligibility.Input{Service: lbService().class(ptr.To("example.com/x")).obj(), Slices: three, Node: readyNode()}, false, serviceclass.ReasonNotOurClass, names.ServiceClass, 0, 0, false},
		{"excluded node keeps datapath endpoints", def, eligibility.Input{Service: lbService().obj(), Slices: three, Node: excluded}, false, nodeexclusion.ReasonNodeExcluded, names.NodeExclusion, 0, 2, true},
		{"only unregistered endpoints", def, eligibility.Input{Service: lbService().obj(), Slices: epSlice(readyEP("198.19.1.12", node, "unregistered")), Node: readyNode()}, false, trafficpolicy.ReasonNoEligibleEndpoints, names.TrafficPolicy, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := tt.runner.Evaluate(context.Background(), &tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if d.Announce != tt.wantAnnounce || d.Reason != tt.wantReason || d.Plugin != tt.wantPlugin || d.Weight != tt.wantWeight ||
				len(d.NewFlowEndpoints) != tt.wantNewFlow || d.InScope != tt.wantInScope || d.Message == "" {
				t.Errorf("decision = %+v\nwant announce=%t reason=%s plugin=%s weight=%d newFlow=%d inScope=%t",
					d, tt.wantAnnounce, tt.wantReason, tt.wantPlugin, tt.wantWeight, tt.wantNewFlow, tt.wantInScope)
			}
		})
	}
}

func defaultRegistry() eligibility.Registry { return plugins.NewDefaultRegistry() }

func checkStatus(t *testing.T, st *eligibility.Status, wantReason string) {
	t.Helper()
	if wantReason == "" {
		if !st.IsSuccess() {
			t.Errorf("status = %v, want Success", st)
		}
		return
	}
	if st.Code() != eligibility.Ineligible || st.Reason() != wantReason || st.Message() == "" {
		t.Errorf("status = %v, want Ineligible %s with a message", st, wantReason)
	}
}

// notReadyRegistry is fakeRegistry plus endpoints recorded as not datapath-ready (ns/name -> reason).
type notReadyRegistry struct {
	fakeRegistry
	notReady map[string]string
}

func (r notReadyRegistry) DatapathNotReady(ns, name string, _ netip.Addr) (string, bool) {
	reason, ok := r.notReady[ns+"/"+name]
	return reason, ok
}

func TestDatapathNotReadyReason(t *testing.T) {
	reg := notReadyRegistry{fakeRegistry{"default/a": true}, map[string]string{"default/broken": "attach pod program: no bpffs"}}
	r, err := eligibility.NewRunner(context.Background(), defaultRegistry(), eligibility.Profile{Plugins: plugins.DefaultPlugins()},
		eligibility.NewHandle(node, reg, nil))
	if err != nil {
		t.Fatal(err)
	}
	local := lbService().policy(corev1.ServiceExternalTrafficPolicyLocal).obj()
	// Only a not-ready local endpoint: the node does not announce, and says why.
	d, err := r.Evaluate(context.Background(), &eligibility.Input{Service: local, Slices: epSlice(readyEP("198.19.1.20", node, "broken")), Node: readyNode()})
	if err != nil {
		t.Fatal(err)
	}
	if d.Announce || d.Reason != datapathready.ReasonDatapathNotReady || !strings.Contains(d.Message, "default/broken: attach pod program: no bpffs") || len(d.NewFlowEndpoints) != 0 {
		t.Fatalf("decision = %+v, want not announced with reason %s naming the pod", d, datapathready.ReasonDatapathNotReady)
	}
	// A ready endpoint next to it: announced, the broken one gets no traffic.
	d, err = r.Evaluate(context.Background(), &eligibility.Input{Service: local,
		Slices: epSlice(readyEP("198.19.1.20", node, "broken"), readyEP("198.19.1.10", node, "a")), Node: readyNode()})
	if err != nil {
		t.Fatal(err)
	}
	if !d.Announce || len(d.NewFlowEndpoints) != 1 || d.NewFlowEndpoints[0].PodName != "a" {
		t.Fatalf("decision = %+v, want announced with only pod a", d)
	}
	// Unregistered (not recorded at all) keeps the generic reason.
	d, _ = r.Evaluate(context.Background(), &eligibility.Input{Service: local, Slices: epSlice(readyEP("198.19.1.12", node, "unregistered")), Node: readyNode()})
	if d.Reason != trafficpolicy.ReasonNoEligibleEndpoints {
		t.Fatalf("unregistered endpoint: reason %s, want %s", d.Reason, trafficpolicy.ReasonNoEligibleEndpoints)
	}
}
