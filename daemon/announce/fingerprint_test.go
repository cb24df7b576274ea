package announce

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/daemon/datapath"
	"github.com/bgplb/bgplb/daemon/eligibility"
)

func TestFingerprint(t *testing.T) {
	base := func() *datapath.ServiceBackends {
		ep := eligibility.LocalEndpoint{IP: netip.MustParseAddr("198.19.1.5"), NodeName: "node1", PodNamespace: "default",
			PodName: "web-1", Ready: true, Serving: true,
			Ports: []eligibility.Port{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 8080}}}
		return &datapath.ServiceBackends{
			VIPs:         []netip.Addr{netip.MustParseAddr("198.18.0.10")},
			Ports:        []datapath.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}},
			Local:        true,
			SourceRanges: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")},
			Announced:    true,
			NewFlow:      []eligibility.LocalEndpoint{ep},
			Keep:         []eligibility.LocalEndpoint{ep},
		}
	}
	if got := fingerprint(nil); got != 0 {
		t.Errorf("nil fingerprint = %d, want 0", got)
	}
	if fingerprint(&datapath.ServiceBackends{}) == 0 {
		t.Error("empty state has fingerprint 0 (reserved for nil)")
	}
	want := fingerprint(base())
	if got := fingerprint(base()); got != want {
		t.Fatalf("equal states: fingerprints %d and %d", got, want)
	}
	changes := map[string]func(b *datapath.ServiceBackends){
		"vip":          func(b *datapath.ServiceBackends) { b.VIPs[0] = netip.MustParseAddr("198.18.0.11") },
		"second vip":   func(b *datapath.ServiceBackends) { b.VIPs = append(b.VIPs, netip.MustParseAddr("2001:db8::10")) },
		"port":         func(b *datapath.ServiceBackends) { b.Ports[0].Port = 81 },
		"port name":    func(b *datapath.ServiceBackends) { b.Ports[0].Name = "web" },
		"protocol":     func(b *datapath.ServiceBackends) { b.Ports[0].Protocol = corev1.ProtocolUDP },
		"local":        func(b *datapath.ServiceBackends) { b.Local = false },
		"source range": func(b *datapath.ServiceBackends) { b.SourceRanges[0] = netip.MustParsePrefix("198.51.100.0/25") },
		"no ranges":    func(b *datapath.ServiceBackends) { b.SourceRanges = nil },
		"fail closed":  func(b *datapath.ServiceBackends) { b.SourceRanges, b.RestrictSources = nil, true },
		"announced":    func(b *datapath.ServiceBackends) { b.Announced = false },
		"endpoint ip":  func(b *datapath.ServiceBackends) { b.Keep[0].IP = netip.MustParseAddr("198.19.1.6") },
		"target port": func(b *datapath.ServiceBackends) {
			b.Keep[0].Ports = []eligibility.Port{{Name: "http", Protocol: "TCP", Port: 8081}}
		},
		"pod":           func(b *datapath.ServiceBackends) { b.Keep[0].PodName = "web-2" },
		"terminating":   func(b *datapath.ServiceBackends) { b.Keep[0].Terminating = true },
		"ready":         func(b *datapath.ServiceBackends) { b.NewFlow[0].Ready = false },
		"no new flows":  func(b *datapath.ServiceBackends) { b.NewFlow = nil },
		"keep one more": func(b *datapath.ServiceBackends) { b.Keep = append(b.Keep, b.Keep[0]) },
		// The same endpoint moved from one list to the other is a different state.
		"moved": func(b *datapath.ServiceBackends) {
			b.NewFlow, b.Keep = append(b.NewFlow, b.Keep...), nil
		},
	}
	seen := map[uint64]string{want: "base"}
	for name, change := range changes {
		b := base()
		change(b)
		got := fingerprint(b)
		if other, dup := seen[got]; dup {
			t.Errorf("%s: fingerprint equals that of %s", name, other)
		}
		seen[got] = name
	}
}

// TestBackendsForSourceRanges: the datapath gets the legacy annotation's ranges, and an
// unparsable entry restricts the Service to no client at all (fail closed).
func TestBackendsForSourceRanges(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{
		corev1.AnnotationLoadBalancerSourceRangesKey: " 198.51.100.0/24 "}}}
	b := backendsFor(svc, nil, eligibility.Decision{})
	if !b.RestrictSources || len(b.SourceRanges) != 2 || b.SourceRanges[0] != netip.MustParsePrefix("198.51.100.0/24") {
		t.Fatalf("annotation: restrict=%v ranges=%v", b.RestrictSources, b.SourceRanges)
	}
	svc.Spec.LoadBalancerSourceRanges = []string{"198.51.100.0/24", "010.0.0.0/8"}
	b = backendsFor(svc, nil, eligibility.Decision{})
	if !b.RestrictSources || len(b.SourceRanges) != 0 {
		t.Fatalf("unparsable entry: restrict=%v ranges=%v, want restricted to nothing", b.RestrictSources, b.SourceRanges)
	}
	if b = backendsFor(&corev1.Service{}, nil, eligibility.Decision{}); b.RestrictSources || len(b.SourceRanges) != 0 {
		t.Fatalf("no ranges: restrict=%v ranges=%v", b.RestrictSources, b.SourceRanges)
	}
}
