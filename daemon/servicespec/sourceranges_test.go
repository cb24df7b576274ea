package servicespec

import (
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
