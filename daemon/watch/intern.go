package watch

import (
	"maps"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// maxInterned bounds how many distinct maps an interner remembers.
const maxInterned = 256

// annotationInterner shares identical bgplb.io annotation maps between cached Services.
// Cached objects are never mutated, so they may share a map; most Services that carry
// bgplb.io annotations name one of a few pools, and every Go map costs ~350 bytes however
// small (3 MB at 10k Services). Safe for concurrent use.
type annotationInterner struct {
	mu   sync.Mutex
	maps map[string]map[string]string // canonical form -> the shared map
}

func newAnnotationInterner() *annotationInterner {
	return &annotationInterner{maps: map[string]map[string]string{}}
}

// intern returns a map equal to m, shared with earlier calls when possible. Maps with a
// requested IP (unique per Service by nature) or more than four entries are returned as
// they are; once maxInterned distinct maps are remembered, new ones are not added.
func (in *annotationInterner) intern(m map[string]string) map[string]string {
	if len(m) == 0 || len(m) > 4 {
		return m
	}
	if _, ok := m[v1alpha1.AnnotationLoadBalancerIPs]; ok {
		return m
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(m[k])
		b.WriteByte(0)
	}
	key := b.String()
	in.mu.Lock()
	defer in.mu.Unlock()
	if shared, ok := in.maps[key]; ok {
		return shared
	}
	if len(in.maps) < maxInterned {
		in.maps[key] = m
	}
	return m
}

// Bounds of a vocabulary.
const (
	maxVocabulary  = 4096 // admitted strings
	maxCandidates  = 4096 // strings seen once; forgotten all at once when full
	maxSharedPtrs  = 1024 // shared pointers
	maxVocabString = 128  // longer strings are never admitted
)

// vocabulary shares equal strings, and pointers to equal values, between cached objects.
// The API decoder allocates every string and pointer of every object anew, yet most
// repeat across thousands of objects: namespaces, label keys, enum values (protocols,
// traffic policies, address types), port names, node names, condition types, reasons and
// most messages (16–96 bytes each, ~5 MB at 10k Services and EndpointSlices).
//
// A string is admitted the second time it is seen, so unique values (names, IPs) do not
// fill it; it holds at most maxVocabulary strings and maxSharedPtrs pointers, and past
// that returns new values as they are. Shared pointers are safe because cached objects
// are never mutated (consumers DeepCopy before they change anything). Safe for
// concurrent use.
type vocabulary struct {
	mu   sync.Mutex
	strs map[string]string   // admitted strings (own copies)
	seen map[string]struct{} // candidates seen once
	ptrs map[any]any         // value -> shared *T (the key's dynamic type is T)
}

func newVocabulary() *vocabulary {
	return &vocabulary{strs: map[string]string{}, seen: map[string]struct{}{}, ptrs: map[any]any{}}
}

// str returns a string equal to s, shared with earlier calls once s has been seen twice.
func (v *vocabulary) str(s string) string {
	if s == "" || len(s) > maxVocabString {
		return s
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.strLocked(s)
}

func (v *vocabulary) strLocked(s string) string {
	if shared, ok := v.strs[s]; ok {
		return shared
	}
	if len(v.strs) >= maxVocabulary {
		return s
	}
	if _, ok := v.seen[s]; ok {
		delete(v.seen, s)
		shared := strings.Clone(s) // s may be part of a larger allocation
		v.strs[shared] = shared
		return shared
	}
	if len(v.seen) >= maxCandidates {
		clear(v.seen)
	}
	v.seen[strings.Clone(s)] = struct{}{}
	return s
}

// sharedStr is str for string types.
func sharedStr[T ~string](v *vocabulary, s T) T { return T(v.str(string(s))) }

// labels makes the keys and values of m shared strings, in place (assigning an existing
// key stores the given key string).
func (v *vocabulary) labels(m map[string]string) {
	if len(m) == 0 {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for k, val := range m {
		if len(k) > maxVocabString || len(val) > maxVocabString {
			continue
		}
		m[v.strLocked(k)] = v.strLocked(val)
	}
}

// service shares the repeated strings and pointers of s (in place).
func (v *vocabulary) service(s *corev1.Service) {
	s.Namespace = v.str(s.Namespace)
	v.labels(s.Labels)
	sp := &s.Spec
	sp.Type = sharedStr(v, sp.Type)
	sp.SessionAffinity = sharedStr(v, sp.SessionAffinity)
	sp.ExternalTrafficPolicy = sharedStr(v, sp.ExternalTrafficPolicy)
	sp.InternalTrafficPolicy = sharedPtr(v, sp.InternalTrafficPolicy)
	sp.IPFamilyPolicy = sharedPtr(v, sp.IPFamilyPolicy)
	sp.LoadBalancerClass = sharedPtr(v, sp.LoadBalancerClass)
	sp.AllocateLoadBalancerNodePorts = sharedPtr(v, sp.AllocateLoadBalancerNodePorts)
	for i := range sp.IPFamilies {
		sp.IPFamilies[i] = sharedStr(v, sp.IPFamilies[i])
	}
	if len(sp.ClusterIPs) > 0 && sp.ClusterIP == sp.ClusterIPs[0] {
		sp.ClusterIP = sp.ClusterIPs[0] // one string, not two equal ones
	}
	v.labels(sp.Selector)
	for i := range sp.Ports {
		p := &sp.Ports[i]
		p.Name = v.str(p.Name)
		p.Protocol = sharedStr(v, p.Protocol)
		p.AppProtocol = sharedPtr(v, p.AppProtocol)
		if p.TargetPort.Type == intstr.String {
			p.TargetPort.StrVal = v.str(p.TargetPort.StrVal)
		}
	}
	for i := range s.Status.LoadBalancer.Ingress {
		ing := &s.Status.LoadBalancer.Ingress[i]
		ing.IPMode = sharedPtr(v, ing.IPMode)
	}
	for i := range s.Status.Conditions {
		c := &s.Status.Conditions[i]
		c.Type = v.str(c.Type)
		c.Status = sharedStr(v, c.Status)
		c.Reason = v.str(c.Reason)
		c.Message = v.str(c.Message)
	}
}

// endpointSlice shares the repeated strings and pointers of s (in place; labels, the
// endpoints' nodeName and conditions are trimSlice's).
func (v *vocabulary) endpointSlice(s *discoveryv1.EndpointSlice) {
	s.Namespace = v.str(s.Namespace)
	s.AddressType = sharedStr(v, s.AddressType)
	for i := range s.Ports {
		p := &s.Ports[i]
		p.Name = sharedPtr(v, p.Name)
		p.Protocol = sharedPtr(v, p.Protocol)
		p.Port = sharedPtr(v, p.Port)
		p.AppProtocol = sharedPtr(v, p.AppProtocol)
	}
	for i := range s.Endpoints {
		ep := &s.Endpoints[i]
		ep.Zone = sharedPtr(v, ep.Zone)
		if ep.TargetRef != nil {
			ep.TargetRef.Kind = v.str(ep.TargetRef.Kind)
			ep.TargetRef.Namespace = v.str(ep.TargetRef.Namespace)
		}
	}
}

// sharedPtr returns a pointer to a value equal to *p, shared with earlier calls (nil for
// nil). Meant for small values of few distinct kinds: enums, port numbers and names,
// node names.
func sharedPtr[T comparable](v *vocabulary, p *T) *T {
	if p == nil {
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	var key any = *p
	if q, ok := v.ptrs[key]; ok {
		return q.(*T)
	}
	if len(v.ptrs) >= maxSharedPtrs {
		return p
	}
	own := new(T)
	*own = *p
	v.ptrs[key] = own
	return own
}
