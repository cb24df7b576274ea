package servicespec

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/utils/net"
)

const annot = corev1.AnnotationLoadBalancerSourceRangesKey

func svcWith(field []string, annotation *string) *corev1.Service {
	s := &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerSourceRanges: field}}
	if annotation != nil {
		s.ObjectMeta = metav1.ObjectMeta{Annotations: map[string]string{annot: *annotation}}
	}
	return s
}

func ptr(s string) *string { return &s }

// TestParseSourceRanges is a table against Kubernetes' documented semantics: the field wins
// when non-empty (the annotation is then not even read), else the annotation,
// comma-separated, whitespace trimmed (k8s.io/cloud-provider service/helpers
// GetLoadBalancerSourceRanges); per family, no range means unrestricted and /0 means all
// (kube-proxy newBaseServiceInfo); any entry we cannot parse fails closed.
func TestParseSourceRanges(t *testing.T) {
	all4, all6 := "0.0.0.0/0", "::/0"
	tests := []struct {
		name       string
		field      []string
		annotation *string
		restrict   bool
		want       []string // sorted
		invalid    []string
		from       string
	}{
		{name: "nothing: everyone", restrict: false},
		{name: "empty annotation: everyone", annotation: ptr("  "), restrict: false},
		{name: "field", field: []string{"198.51.100.0/24"}, restrict: true, want: []string{"198.51.100.0/24", all6}, from: FromField},
		{name: "field entries are trimmed (the API allows padding)", field: []string{" 198.51.100.0/24 ", "\t203.0.113.0/25"},
			restrict: true, want: []string{"198.51.100.0/24", "203.0.113.0/25", all6}, from: FromField},
		{name: "annotation, comma-separated, trimmed", annotation: ptr(" 198.51.100.0/24 ,203.0.113.7/32 "),
			restrict: true, want: []string{"198.51.100.0/24", "203.0.113.7/32", all6}, from: FromAnnotation},
		{name: "field wins over annotation", field: []string{"198.51.100.0/24"}, annotation: ptr("203.0.113.0/24"),
			restrict: true, want: []string{"198.51.100.0/24", all6}, from: FromField},
		{name: "field wins even over an unparsable annotation", field: []string{"198.51.100.0/24"}, annotation: ptr("010.0.0.0/8"),
			restrict: true, want: []string{"198.51.100.0/24", all6}, from: FromField},
		{name: "empty field list falls back to the annotation", field: []string{}, annotation: ptr("203.0.113.0/24"),
			restrict: true, want: []string{"203.0.113.0/24", all6}, from: FromAnnotation},
		{name: "host bits are masked, duplicates merged", field: []string{"198.51.100.9/24", "198.51.100.0/24"},
			restrict: true, want: []string{"198.51.100.0/24", all6}, from: FromField},
		{name: "IPv6 only: IPv4 unrestricted", field: []string{"2001:db8::/32"}, restrict: true, want: []string{all4, "2001:db8::/32"}, from: FromField},
		{name: "both families", field: []string{"2001:db8::/32", "198.51.100.0/24"}, restrict: true,
			want: []string{"198.51.100.0/24", "2001:db8::/32"}, from: FromField},
		{name: "/0 allows the family", field: []string{"0.0.0.0/0"}, restrict: true, want: []string{all4, all6}, from: FromField},
		{name: "leading zero fails closed", field: []string{"198.51.100.0/24", "010.0.0.0/8"}, restrict: true,
			invalid: []string{`"010.0.0.0/8"`}, from: FromField},
		{name: "leading zero in the annotation fails closed", annotation: ptr("010.0.0.0/8"), restrict: true,
			invalid: []string{`"010.0.0.0/8"`}, from: FromAnnotation},
		{name: "empty element fails closed", annotation: ptr("198.51.100.0/24,"), restrict: true, invalid: []string{`""`}, from: FromAnnotation},
		{name: "bad length fails closed", field: []string{"198.51.100.0/33"}, restrict: true, invalid: []string{`"198.51.100.0/33"`}, from: FromField},
		{name: "a bare address fails closed", annotation: ptr("198.51.100.1"), restrict: true, invalid: []string{`"198.51.100.1"`}, from: FromAnnotation},
		{name: "a zone fails closed", field: []string{"fe80::%eth0/64"}, restrict: true, invalid: []string{`"fe80::%eth0/64"`}, from: FromField},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ParseSourceRanges(svcWith(tc.field, tc.annotation))
			var gotS []string
			for _, p := range got.Prefixes {
				gotS = append(gotS, p.String())
			}
			if got.Restrict != tc.restrict || !slices.Equal(gotS, tc.want) || !slices.Equal(got.Invalid, tc.invalid) || got.From != tc.from {
				t.Fatalf("got restrict=%v prefixes=%v invalid=%v from=%q; want restrict=%v prefixes=%v invalid=%v from=%q",
					got.Restrict, gotS, got.Invalid, got.From, tc.restrict, tc.want, tc.invalid, tc.from)
			}
			if (got.Err() != nil) != (len(tc.invalid) > 0) {
				t.Fatalf("Err() = %v with invalid %v", got.Err(), tc.invalid)
			}
			if len(tc.invalid) > 0 && !strings.Contains(got.Err().Error(), "accept no client") {
				t.Fatalf("Err() does not say traffic is blocked: %v", got.Err())
			}
		})
	}
}

// TestAgreesWithKubernetesParser: every entry we accept means the same network to
// k8s.io/utils/net.ParseCIDRSloppy, the parser kube-proxy and the cloud-provider helper
// use; the entries where they differ are exactly the ones we refuse (fail closed).
func TestAgreesWithKubernetesParser(t *testing.T) {
	for _, e := range []string{
		"198.51.100.0/24", "198.51.100.77/24", "0.0.0.0/0", "203.0.113.5/32", "2001:db8::/32",
		"2001:db8::1/64", "::/0", "010.0.0.0/8", "198.051.100.0/24", "198.51.100.0/33", "fe80::%eth0/64", "",
	} {
		ours := ParseSourceRanges(svcWith([]string{e}, nil))
		_, k8s, err := utilnet.ParseCIDRSloppy(e)
		if len(ours.Invalid) > 0 {
			if ours.Restrict != true || len(ours.Prefixes) != 0 {
				t.Errorf("%q: invalid but not fail-closed: %+v", e, ours)
			}
			t.Logf("%q: refused (Kubernetes parser: %v, err %v)", e, k8s, err)
			continue
		}
		if err != nil {
			t.Errorf("%q: we accept what Kubernetes refuses (%v)", e, err)
			continue
		}
		want, _ := netip.ParsePrefix(k8s.String())
		if !slices.Contains(ours.Prefixes, want) {
			t.Errorf("%q: ours %v, Kubernetes %v", e, ours.Prefixes, want)
		}
	}
}

// TestSourceRangeCap: a Service may take at most MaxSourceRangeEntries entries of the
// shared source-range map (ranges × ports × IP families); beyond it, it fails closed.
func TestSourceRangeCap(t *testing.T) {
	svc := func(ranges, ports int) *corev1.Service {
		s := &corev1.Service{}
		for i := 0; i < ranges; i++ {
			s.Spec.LoadBalancerSourceRanges = append(s.Spec.LoadBalancerSourceRanges, fmt.Sprintf("198.18.%d.%d/32", i/256, i%256))
		}
		for i := 0; i < ports; i++ {
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Port: int32(8000 + i)})
		}
		return s
	}
	// 63 ranges + the IPv6 /0 = 64 prefixes; 64 × 64 ports = 4096: at the cap.
	at := ParseSourceRanges(svc(63, 64))
	if at.Exceeded != 0 || at.Err() != nil || len(at.Allowed()) != 64 {
		t.Fatalf("at the cap: exceeded %d, err %v, %d allowed", at.Exceeded, at.Err(), len(at.Allowed()))
	}
	over := ParseSourceRanges(svc(64, 64))
	if over.Exceeded != 65*64 || !over.Restrict || over.Allowed() != nil {
		t.Fatalf("over the cap: exceeded %d, restrict %v, allowed %v", over.Exceeded, over.Restrict, over.Allowed())
	}
	if err := over.Err(); err == nil || !strings.Contains(err.Error(), "4160 entries") || !strings.Contains(err.Error(), "accept no client") {
		t.Fatalf("over the cap: err %v", err)
	}
	// Dual-stack counts both families' frontends.
	ds := svc(63, 64)
	ds.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	if r := ParseSourceRanges(ds); r.Exceeded != 64*64*2 {
		t.Fatalf("dual-stack: exceeded %d, want %d", r.Exceeded, 64*64*2)
	}
}
