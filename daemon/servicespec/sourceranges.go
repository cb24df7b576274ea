package servicespec

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Where the ranges came from (SourceRanges.From).
const (
	FromField      = "spec.loadBalancerSourceRanges"
	FromAnnotation = "annotation " + corev1.AnnotationLoadBalancerSourceRangesKey
)

// MaxSourceRangeEntries bounds what one Service may take of the datapath's source-range
// map, which all Services share (65536 entries, one per frontend and range): a Service
// whose ranges × ports × IP families exceed it fails closed (SourceRanges.Exceeded), so
// that no Service can keep the others' ranges from being programmed.
const MaxSourceRangeEntries = 4096

// MaxFrontends bounds the frontends (VIP × port) one Service may program in the
// datapath's service map, which all Services share (65536 entries): a node neither
// programs nor announces a Service over it, with the Announced reason TooManyFrontends.
const MaxFrontends = 256

// Frontends is the number of datapath frontends a Service with these VIPs takes.
func Frontends(svc *corev1.Service, vips int) int { return vips * len(svc.Spec.Ports) }

// SourceRanges is who may reach a Service's VIPs.
type SourceRanges struct {
	// Restrict is false when everyone may connect (no ranges given). When true, only
	// sources inside Prefixes may: Prefixes empty then blocks every client.
	Restrict bool
	// Prefixes are the allowed sources, masked, sorted and without duplicates. When
	// the given ranges cover one family only, the other family's /0 is added (that
	// family is not restricted, as with kube-proxy).
	Prefixes []netip.Prefix
	// Invalid holds the entries that could not be parsed (quoted, in input order).
	// Non-empty means fail closed: Restrict true and Prefixes nil.
	Invalid []string
	// From names the input that was used: FromField, FromAnnotation, or "".
	From string
	// Exceeded is the number of source-range entries the Service would take (ranges ×
	// ports × IP families) when it is over MaxSourceRangeEntries, else 0. Non-zero means
	// fail closed: Allowed returns nil (Prefixes keep the parsed ranges for the report).
	Exceeded int
}

// Err describes Invalid, or returns nil.
func (r SourceRanges) Err() error {
	if r.Exceeded > 0 {
		return fmt.Errorf("%s: %d ranges × ports × IP families = %d entries, more than the %d one Service may use; the Service's VIPs accept no client until the ranges are merged or fewer",
			r.From, len(r.Prefixes), r.Exceeded, MaxSourceRangeEntries)
	}
	if len(r.Invalid) == 0 {
		return nil
	}
	return fmt.Errorf("%s: cannot parse %s; the Service's VIPs accept no client until this is fixed",
		r.From, strings.Join(r.Invalid, ", "))
}

// ParseSourceRanges returns the source ranges of svc (see the package doc for the rules).
func ParseSourceRanges(svc *corev1.Service) SourceRanges {
	var entries []string
	var r SourceRanges
	switch {
	case len(svc.Spec.LoadBalancerSourceRanges) > 0:
		entries, r.From = svc.Spec.LoadBalancerSourceRanges, FromField
	default:
		v := strings.TrimSpace(svc.Annotations[corev1.AnnotationLoadBalancerSourceRangesKey])
		if v == "" {
			return r
		}
		entries, r.From = strings.Split(v, ","), FromAnnotation
	}
	r.Restrict = true
	var has4, has6 bool
	for _, e := range entries {
		p, err := netip.ParsePrefix(strings.TrimSpace(e))
		if err != nil {
			r.Invalid = append(r.Invalid, fmt.Sprintf("%q", e))
			continue
		}
		p = p.Masked()
		has4, has6 = has4 || p.Addr().Is4(), has6 || p.Addr().Is6()
		r.Prefixes = append(r.Prefixes, p)
	}
	if len(r.Invalid) > 0 {
		r.Prefixes = nil
		return r
	}
	switch {
	case !has4:
		r.Prefixes = append(r.Prefixes, netip.PrefixFrom(netip.IPv4Unspecified(), 0))
	case !has6:
		r.Prefixes = append(r.Prefixes, netip.PrefixFrom(netip.IPv6Unspecified(), 0))
	}
	slices.SortFunc(r.Prefixes, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	r.Prefixes = slices.Compact(r.Prefixes)
	if n := len(r.Prefixes) * max(1, len(svc.Spec.Ports)) * max(1, len(svc.Spec.IPFamilies)); n > MaxSourceRangeEntries {
		r.Exceeded = n
	}
	return r
}

// Allowed returns the prefixes the datapath programs: nil (no client) when the ranges
// fail closed (Invalid or Exceeded).
func (r SourceRanges) Allowed() []netip.Prefix {
	if r.Exceeded > 0 {
		return nil
	}
	return r.Prefixes
}
