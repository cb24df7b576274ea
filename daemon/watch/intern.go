package watch

import (
	"maps"
	"slices"
	"strings"
	"sync"

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
