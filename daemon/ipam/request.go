package ipam

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	v1alpha1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/pools"
	"github.com/bgplb/bgplb/daemon/servicespec"
)

// family is an address family: false = IPv4, true = IPv6 (the value of Addr.Is6).
type family bool

const (
	v4 family = false
	v6 family = true
)

func (f family) String() string {
	if f == v6 {
		return "IPv6"
	}
	return "IPv4"
}

func familyOf(ip netip.Addr) family { return family(ip.Is6()) }

// addrPerFamily holds at most one address per family (the zero Addr: none). The allocator
// keeps a request per Service; an array costs a fraction of a map.
type addrPerFamily [2]netip.Addr

func (a *addrPerFamily) slot(f family) *netip.Addr {
	if f == v6 {
		return &a[1]
	}
	return &a[0]
}

// get returns the address of family f and whether there is one.
func (a *addrPerFamily) get(f family) (netip.Addr, bool) {
	ip := *a.slot(f)
	return ip, ip.IsValid()
}

// set stores ip under its family.
func (a *addrPerFamily) set(ip netip.Addr) { *a.slot(familyOf(ip)) = ip }

type portKey struct {
	port     int32
	protocol corev1.Protocol
}

// shareTerms is what a request says about sharing its addresses, and all the allocator keeps
// of it once the addresses are held (a whole request is ~220 bytes per Service).
type shareTerms struct {
	key        string
	sharingKey string
	ports      []portKey // sorted
	local      bool      // externalTrafficPolicy Local
	selector   string    // canonical spec.selector
	namespace  string
	crossNS    string // canonical AnnotationSharingCrossNamespace: sorted, comma-separated, "*" alone; "" for none
}

// request is what a Service asks for, parsed and validated once per Assign.
type request struct {
	shareTerms
	labels    labels.Set
	nsLabels  labels.Set
	families  []family // wanted families, primary first
	need      int      // how many of families must be satisfied: 1 or len(families)
	requested addrPerFamily
	pool      string // annotation bgplb.io/pool, "" for any
	status    []netip.Addr
	// statusOdd is set when the status holds something we never write (a hostname, an
	// ipMode other than VIP, an unparsable IP), so it must be rewritten even if the IPs agree.
	statusOdd bool
}

// ServiceKey returns the key the allocator uses for a Service: "namespace/name".
func ServiceKey(svc *corev1.Service) string { return svc.Namespace + "/" + svc.Name }

// isOurs reports whether the allocator handles svc (decision 1 of docs/design.md).
func (c Config) isOurs(svc *corev1.Service) (bool, string) {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return false, fmt.Sprintf("type is %s, not LoadBalancer", svc.Spec.Type)
	}
	switch {
	case servicespec.Class{Name: c.Class, Default: c.DefaultClass}.Owns(svc):
		return true, ""
	case svc.Spec.LoadBalancerClass == nil:
		return false, fmt.Sprintf("no loadBalancerClass and --default-class is off (class %s)", c.class())
	}
	return false, fmt.Sprintf("loadBalancerClass %s is not %s", *svc.Spec.LoadBalancerClass, c.class())
}

// parseRequest reads the Service; a non-nil error is an InvalidRequest message naming the
// field. The request is never nil: with an error it still holds the key, the sharing terms
// and the status addresses, so a Service whose request turned invalid can keep what it has.
func parseRequest(svc *corev1.Service, nsLabels labels.Set) (*request, error) {
	r := &request{
		shareTerms: shareTerms{
			key:        ServiceKey(svc),
			sharingKey: strings.TrimSpace(svc.Annotations[v1alpha1.AnnotationSharingKey]),
			local:      svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
			selector:   labels.Set(svc.Spec.Selector).String(),
			namespace:  svc.Namespace,
		},
		labels:   labels.Set(svc.Labels),
		nsLabels: nsLabels,
		pool:     strings.TrimSpace(svc.Annotations[v1alpha1.AnnotationPool]),
	}

	// What sharing and keeping need comes first: an invalid request still returns them.
	crossNS, crossErr := parseCrossNamespace(svc.Annotations[v1alpha1.AnnotationSharingCrossNamespace])
	r.crossNS = crossNS
	for _, p := range svc.Spec.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		r.ports = append(r.ports, portKey{port: p.Port, protocol: proto})
	}
	slices.SortFunc(r.ports, func(a, b portKey) int {
		if a.port != b.port {
			return int(a.port - b.port)
		}
		return strings.Compare(string(a.protocol), string(b.protocol))
	})

	for _, ing := range svc.Status.LoadBalancer.Ingress {
		ip, err := pools.ParseAddr(ing.IP)
		if err == nil {
			r.status = append(r.status, ip)
		}
		if err != nil || ing.Hostname != "" || len(ing.Ports) > 0 ||
			(ing.IPMode != nil && *ing.IPMode != corev1.LoadBalancerIPModeVIP) {
			r.statusOdd = true
		}
	}

	if crossErr != nil {
		return r, crossErr
	}

	// Families, primary first.
	for _, f := range svc.Spec.IPFamilies {
		switch f {
		case corev1.IPv4Protocol:
			r.families = appendFamily(r.families, v4)
		case corev1.IPv6Protocol:
			r.families = appendFamily(r.families, v6)
		default:
			return r, fmt.Errorf("spec.ipFamilies: unknown family %q", f)
		}
	}
	if len(r.families) == 0 {
		r.families = []family{v4}
		if len(svc.Spec.ClusterIPs) > 0 {
			if ip, err := netip.ParseAddr(svc.Spec.ClusterIPs[0]); err == nil && ip.Is6() {
				r.families = []family{v6}
			}
		}
	}
	policy := corev1.IPFamilyPolicySingleStack
	if svc.Spec.IPFamilyPolicy != nil {
		policy = *svc.Spec.IPFamilyPolicy
	}
	switch policy {
	case corev1.IPFamilyPolicySingleStack:
		r.families = r.families[:1]
		r.need = 1
	case corev1.IPFamilyPolicyPreferDualStack:
		r.need = 1
	case corev1.IPFamilyPolicyRequireDualStack:
		r.families = appendFamily(appendFamily(r.families, v4), v6)
		r.need = 2
	default:
		return r, fmt.Errorf("spec.ipFamilyPolicy: unknown policy %q", policy)
	}

	// Requested IPs: the annotation, then spec.loadBalancerIP (must agree).
	if v, ok := svc.Annotations[v1alpha1.AnnotationLoadBalancerIPs]; ok && strings.TrimSpace(v) != "" {
		for _, s := range strings.Split(v, ",") {
			ip, err := pools.ParseAddr(s)
			if err != nil {
				return r, fmt.Errorf("annotation %s: %w", v1alpha1.AnnotationLoadBalancerIPs, err)
			}
			if prev, dup := r.requested.get(familyOf(ip)); dup {
				return r, fmt.Errorf("annotation %s: two %s addresses (%s, %s), at most one per family",
					v1alpha1.AnnotationLoadBalancerIPs, familyOf(ip), prev, ip)
			}
			r.requested.set(ip)
		}
	}
	if s := strings.TrimSpace(svc.Spec.LoadBalancerIP); s != "" {
		ip, err := pools.ParseAddr(s)
		if err != nil {
			return r, fmt.Errorf("spec.loadBalancerIP: %w", err)
		}
		if prev, ok := r.requested.get(familyOf(ip)); ok && prev != ip {
			return r, fmt.Errorf("spec.loadBalancerIP %s disagrees with annotation %s (%s)",
				ip, v1alpha1.AnnotationLoadBalancerIPs, prev)
		}
		r.requested.set(ip)
	}
	for _, ip := range r.requested {
		if f := familyOf(ip); ip.IsValid() && !slices.Contains(r.families, f) {
			return r, fmt.Errorf("requested %s address %s but the Service's families are %v (spec.ipFamilies/ipFamilyPolicy)",
				f, ip, r.families)
		}
	}

	return r, nil
}

func appendFamily(fs []family, f family) []family {
	if slices.Contains(fs, f) {
		return fs
	}
	return append(fs, f)
}

// sameTerms reports whether a and b (nil: no sharing key) say the same about sharing.
func sameTerms(a, b *shareTerms) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.key == b.key && a.sharingKey == b.sharingKey && a.local == b.local &&
		a.selector == b.selector && slices.Equal(a.ports, b.ports) && a.crossNS == b.crossNS
}

// parseCrossNamespace returns the canonical form of the AnnotationSharingCrossNamespace
// value v ("" for none). An entry that is not a namespace name, or "*" with others, is an
// error, and then nothing is allowed (fail closed).
func parseCrossNamespace(v string) (string, error) {
	var out []string
	for _, e := range strings.Split(v, ",") {
		e = strings.TrimSpace(e)
		switch {
		case e == "":
			continue
		case e == "*":
		default:
			if errs := validation.IsDNS1123Label(e); len(errs) > 0 {
				return "", fmt.Errorf("annotation %s: %q is not a namespace name: %s",
					v1alpha1.AnnotationSharingCrossNamespace, e, strings.Join(errs, "; "))
			}
		}
		out = append(out, e)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > 1 && slices.Contains(out, "*") {
		return "", fmt.Errorf("annotation %s: \"*\" must stand alone", v1alpha1.AnnotationSharingCrossNamespace)
	}
	return strings.Join(out, ","), nil
}

// allowsNamespace reports whether t's Service shares with Services of namespace ns.
func (t *shareTerms) allowsNamespace(ns string) bool {
	if ns == t.namespace || t.crossNS == "*" {
		return true
	}
	return t.crossNS != "" && slices.Contains(strings.Split(t.crossNS, ","), ns)
}

// compatible reports why a and b cannot share one address ("" when they can):
// decision 6 of docs/design.md.
func compatible(a, b *shareTerms) string {
	if a.sharingKey == "" || b.sharingKey == "" {
		return fmt.Sprintf("in use by %s (no sharing key)", b.key)
	}
	if a.sharingKey != b.sharingKey {
		return fmt.Sprintf("in use by %s with a different sharing key", b.key)
	}
	if !a.allowsNamespace(b.namespace) || !b.allowsNamespace(a.namespace) {
		return fmt.Sprintf("held by %s in another namespace: sharing across namespaces needs annotation %s on both Services, each naming the other's namespace (or *)",
			b.key, v1alpha1.AnnotationSharingCrossNamespace)
	}
	if a.local != b.local {
		return fmt.Sprintf("shared with %s, which has a different externalTrafficPolicy", b.key)
	}
	if a.local && a.selector != b.selector {
		return fmt.Sprintf("shared with %s: externalTrafficPolicy Local needs identical selectors", b.key)
	}
	i, j := 0, 0
	for i < len(a.ports) && j < len(b.ports) {
		pa, pb := a.ports[i], b.ports[j]
		switch {
		case pa == pb:
			return fmt.Sprintf("shared with %s: port %d/%s used by both", b.key, pa.port, pa.protocol)
		case pa.port < pb.port || pa.port == pb.port && pa.protocol < pb.protocol:
			i++
		default:
			j++
		}
	}
	return ""
}
