package ipam

import (
	"cmp"
	"fmt"
	"math"
	"net/netip"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	v1alpha1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/pools"
)

// block is one parsed address range of a pool: [first, last], one family.
type block struct {
	pool  *pool
	index int // position in spec.blocks
	first netip.Addr
	last  netip.Addr
	// hint is the lowest address that may be free: every address of the block below it
	// is assigned or avoided. Invalid (zero) when the block is full.
	hint netip.Addr
	used int64 // addresses of the block with at least one owner
}

func (b *block) contains(ip netip.Addr) bool {
	return b.first.Compare(ip) <= 0 && ip.Compare(b.last) <= 0
}

func (b *block) String() string {
	return fmt.Sprintf("spec.blocks[%d] (%s-%s)", b.index, b.first, b.last)
}

// pool is a parsed LoadBalancerIPPool.
type pool struct {
	name        string
	generation  int64
	created     metav1.Time
	blocks      []*block
	svcSel      labels.Selector
	nsSel       labels.Selector
	avoidBuggy  bool
	autoAssign  bool
	disabled    bool
	priority    int32  // automatic allocation tries higher first
	invalid     string // "" or why the spec is unusable, naming the field
	conflicting string // "" or which older pool it overlaps
}

// usable reports whether the pool's addresses may be held (valid and not conflicting).
// A disabled pool is usable for addresses already assigned but hands out no new ones.
func (p *pool) usable() bool { return p.invalid == "" && p.conflicting == "" }

// ready reports whether the pool hands out new addresses.
func (p *pool) ready() bool { return p.usable() && !p.disabled }

func (p *pool) selects(svcLabels, nsLabels labels.Set) bool {
	return p.svcSel.Matches(svcLabels) && p.nsSel.Matches(nsLabels)
}

func (p *pool) hasFamily(v6 bool) bool {
	for _, b := range p.blocks {
		if b.first.Is6() == v6 {
			return true
		}
	}
	return false
}

// avoided reports whether ip is skipped by avoidBuggyIPs (IPv4 .0 and .255).
func (p *pool) avoided(ip netip.Addr) bool {
	if !p.avoidBuggy || !ip.Is4() {
		return false
	}
	last := ip.As4()[3]
	return last == 0 || last == 255
}

// parsePool validates a pool on its own (syntax, ranges, overlaps inside the pool).
// CEL in the CRD rejects most of this already; the allocator re-checks because it must
// never trust its input.
func parsePool(in *v1alpha1.LoadBalancerIPPool) *pool {
	p := &pool{
		name:       in.Name,
		generation: in.Generation,
		created:    in.CreationTimestamp,
		avoidBuggy: in.Spec.AvoidBuggyIPs,
		autoAssign: in.Spec.AutoAssign == nil || *in.Spec.AutoAssign,
		disabled:   in.Spec.Disabled,
		priority:   in.Spec.Priority,
		svcSel:     labels.Nothing(),
		nsSel:      labels.Nothing(),
	}
	var err error
	if p.svcSel, err = pools.Selector(in.Spec.ServiceSelector); err != nil {
		p.invalid = fmt.Sprintf("spec.serviceSelector: %v", err)
		return p
	}
	if p.nsSel, err = pools.Selector(in.Spec.NamespaceSelector); err != nil {
		p.invalid = fmt.Sprintf("spec.namespaceSelector: %v", err)
		return p
	}
	if len(in.Spec.Blocks) == 0 {
		p.invalid = "spec.blocks: must have at least one block"
		return p
	}
	for i, b := range in.Spec.Blocks {
		first, last, err := pools.ParseBlock(b)
		if err != nil {
			p.invalid = fmt.Sprintf("spec.blocks[%d].%v", i, err)
			return p
		}
		p.blocks = append(p.blocks, &block{pool: p, index: i, first: first, last: last})
	}
	sorted := slices.Clone(p.blocks)
	slices.SortFunc(sorted, func(a, b *block) int { return a.first.Compare(b.first) })
	for i := 1; i < len(sorted); i++ {
		if sorted[i].first.Compare(sorted[i-1].last) <= 0 {
			a, b := sorted[i-1], sorted[i]
			if a.index > b.index {
				a, b = b, a
			}
			p.invalid = fmt.Sprintf("spec.blocks[%d]: overlaps spec.blocks[%d]", b.index, a.index)
			return p
		}
	}
	return p
}

// u128 is an address as a 128-bit number.
type u128 struct{ hi, lo uint64 }

func toU128(ip netip.Addr) u128 {
	a := ip.As16()
	var u u128
	for i := 0; i < 8; i++ {
		u.hi = u.hi<<8 | uint64(a[i])
		u.lo = u.lo<<8 | uint64(a[i+8])
	}
	return u
}

// rangeSize is last-first+1 saturated at MaxInt64.
func rangeSize(first, last netip.Addr) int64 {
	a, b := toU128(first), toU128(last)
	hi := b.hi - a.hi
	lo := b.lo - a.lo
	if b.lo < a.lo {
		hi--
	}
	if hi != 0 || lo >= math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(lo) + 1
}

// avoidedIn counts IPv4 addresses ending in .0 or .255 inside [first, last].
func avoidedIn(first, last netip.Addr) int64 {
	if !first.Is4() {
		return 0
	}
	a, b := int64(toU128(first).lo), int64(toU128(last).lo)
	count := func(r int64) int64 { // numbers x in [a, b] with x%256 == r
		upTo := func(n int64) int64 {
			if n < r {
				return 0
			}
			return (n-r)/256 + 1
		}
		return upTo(b) - upTo(a-1)
	}
	return count(0) + count(255)
}

// total is the number of usable addresses of the block.
func (b *block) total() int64 {
	n := rangeSize(b.first, b.last)
	if b.pool.avoidBuggy {
		n -= avoidedIn(b.first, b.last)
	}
	return n
}

// orderPools sorts pools oldest first (creationTimestamp, then name): the order that
// decides which of two overlapping pools wins and the order automatic allocation tries.
func orderPools(ps []*pool) {
	slices.SortFunc(ps, func(a, b *pool) int {
		if c := a.created.Compare(b.created.Time); c != 0 {
			return c
		}
		return cmp.Compare(a.name, b.name)
	})
}

// markConflicts sets p.conflicting for every valid pool that overlaps an older valid,
// non-conflicting pool, and returns the blocks of usable pools sorted by first address.
func markConflicts(ps []*pool) []*block {
	var accepted []*block // sorted by first, non-overlapping
	for _, p := range ps {
		if p.invalid != "" {
			continue
		}
		for _, b := range p.blocks {
			// The first accepted block whose last >= b.first is the only candidate overlap
			// on the left; any overlap must start at or before b.last.
			i, _ := slices.BinarySearchFunc(accepted, b.first, func(x *block, ip netip.Addr) int {
				return x.last.Compare(ip)
			})
			if i < len(accepted) && accepted[i].first.Compare(b.last) <= 0 {
				o := accepted[i]
				p.conflicting = fmt.Sprintf("spec.blocks[%d] (%s-%s) overlaps spec.blocks[%d] of older pool %q",
					b.index, b.first, b.last, o.index, o.pool.name)
				break
			}
		}
		if p.conflicting != "" {
			continue
		}
		for _, b := range p.blocks {
			i, _ := slices.BinarySearchFunc(accepted, b.first, func(x *block, ip netip.Addr) int {
				return x.first.Compare(ip)
			})
			accepted = slices.Insert(accepted, i, b)
		}
	}
	return accepted
}

// status renders the pool's status (conditions without transition times, and counts).
func (p *pool) status() v1alpha1.LoadBalancerIPPoolStatus {
	cond := func(t string, ok bool, reason, msg string) metav1.Condition {
		s := metav1.ConditionFalse
		if ok {
			s = metav1.ConditionTrue
		}
		return metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: p.generation}
	}
	var st v1alpha1.LoadBalancerIPPoolStatus
	switch {
	case p.invalid != "":
		st.Conditions = []metav1.Condition{
			cond(v1alpha1.PoolConditionReady, false, v1alpha1.PoolReasonInvalid, p.invalid),
			cond(v1alpha1.PoolConditionInvalid, true, v1alpha1.PoolReasonInvalid, p.invalid),
			cond(v1alpha1.PoolConditionConflicting, false, v1alpha1.PoolReasonNoConflict, "not checked: the pool is invalid"),
		}
	case p.conflicting != "":
		st.Conditions = []metav1.Condition{
			cond(v1alpha1.PoolConditionReady, false, v1alpha1.PoolReasonConflicting, p.conflicting),
			cond(v1alpha1.PoolConditionInvalid, false, v1alpha1.PoolReasonValid, "the spec is valid"),
			cond(v1alpha1.PoolConditionConflicting, true, v1alpha1.PoolReasonOverlaps, p.conflicting),
		}
	case p.disabled:
		st.Conditions = []metav1.Condition{
			cond(v1alpha1.PoolConditionReady, false, v1alpha1.PoolReasonDisabled, "spec.disabled is true: assigned addresses stay, no new ones are handed out"),
			cond(v1alpha1.PoolConditionInvalid, false, v1alpha1.PoolReasonValid, "the spec is valid"),
			cond(v1alpha1.PoolConditionConflicting, false, v1alpha1.PoolReasonNoConflict, "no overlap with an older pool"),
		}
	default:
		st.Conditions = []metav1.Condition{
			cond(v1alpha1.PoolConditionReady, true, v1alpha1.PoolReasonReady, "addresses are handed out"),
			cond(v1alpha1.PoolConditionInvalid, false, v1alpha1.PoolReasonValid, "the spec is valid"),
			cond(v1alpha1.PoolConditionConflicting, false, v1alpha1.PoolReasonNoConflict, "no overlap with an older pool"),
		}
	}
	add := func(c **v1alpha1.PoolCounts, b *block) {
		if *c == nil {
			*c = &v1alpha1.PoolCounts{}
		}
		(*c).Total = satAdd((*c).Total, b.total())
		if p.usable() {
			(*c).Used += b.used
		}
	}
	for _, b := range p.blocks {
		if b.first.Is4() {
			add(&st.IPv4, b)
		} else {
			add(&st.IPv6, b)
		}
	}
	for _, c := range []*v1alpha1.PoolCounts{st.IPv4, st.IPv6} {
		if c != nil {
			c.Free = max(c.Total-c.Used, 0)
		}
	}
	return st
}

func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
