package announce

import (
	"fmt"
	"net/netip"
	"slices"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// BlockPrefixes returns the prefixes covering one pool block exactly: the CIDR itself, or
// the minimal set of prefixes covering start..stop.
func BlockPrefixes(b v1alpha1.IPBlock) ([]netip.Prefix, error) {
	if b.CIDR != "" {
		p, err := netip.ParsePrefix(b.CIDR)
		if err != nil {
			return nil, fmt.Errorf("parse block cidr %q: %w", b.CIDR, err)
		}
		return []netip.Prefix{p.Masked()}, nil
	}
	start, err := netip.ParseAddr(b.Start)
	if err != nil {
		return nil, fmt.Errorf("parse block start %q: %w", b.Start, err)
	}
	stop, err := netip.ParseAddr(b.Stop)
	if err != nil {
		return nil, fmt.Errorf("parse block stop %q: %w", b.Stop, err)
	}
	start, stop = start.Unmap(), stop.Unmap()
	if start.Is4() != stop.Is4() || stop.Less(start) {
		return nil, fmt.Errorf("block %s-%s is not a range of one family", b.Start, b.Stop)
	}
	return rangePrefixes(start, stop), nil
}

// rangePrefixes returns the minimal prefixes covering [start, stop].
func rangePrefixes(start, stop netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for {
		// Grow the prefix at start as long as it stays aligned and inside the range.
		bits := start.BitLen()
		best := netip.PrefixFrom(start, bits)
		for l := bits - 1; l >= 0; l-- {
			p := netip.PrefixFrom(start, l)
			if p.Masked().Addr() != start || lastAddr(p).Compare(stop) > 0 {
				break
			}
			best = p
		}
		out = append(out, best)
		last := lastAddr(best)
		if last.Compare(stop) >= 0 {
			return out
		}
		start = last.Next()
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().AsSlice()
	bits := p.Bits()
	for i := range a {
		for b := 0; b < 8; b++ {
			if i*8+b >= bits {
				a[i] |= 0x80 >> b
			}
		}
	}
	out, _ := netip.AddrFromSlice(a)
	return out
}

// PoolPrefixes returns the prefixes of every block of every pool (the speaker's allowed
// set), sorted. Unparseable blocks are skipped (the API server rejects them; the pool
// status reports anything else).
func PoolPrefixes(pools []*v1alpha1.LoadBalancerIPPool) []netip.Prefix {
	var out []netip.Prefix
	for _, pool := range pools {
		for _, b := range pool.Spec.Blocks {
			ps, err := BlockPrefixes(b)
			if err != nil {
				continue
			}
			out = append(out, ps...)
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(out)
}

// PoolsContaining returns the pools with a block containing ip.
func PoolsContaining(pools []*v1alpha1.LoadBalancerIPPool, ip netip.Addr) []*v1alpha1.LoadBalancerIPPool {
	var out []*v1alpha1.LoadBalancerIPPool
	for _, pool := range pools {
		for _, b := range pool.Spec.Blocks {
			ps, err := BlockPrefixes(b)
			if err != nil {
				continue
			}
			if slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Contains(ip) }) {
				out = append(out, pool)
				break
			}
		}
	}
	return out
}

// selectorMatches reports whether sel (nil or empty = everything) matches set.
func selectorMatches(sel *labelSelector, set labels.Set) (bool, error) {
	if sel == nil {
		return true, nil
	}
	s, err := asSelector(sel)
	if err != nil {
		return false, err
	}
	return s.Matches(set), nil
}
