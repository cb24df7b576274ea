package pools

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	v1alpha1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// ParseBlock returns the inclusive range [first, last] of a block. The error starts with
// the field name ("cidr: …", "start: …", "stop: …").
func ParseBlock(b v1alpha1.IPBlock) (first, last netip.Addr, err error) {
	hasRange := b.Start != "" || b.Stop != ""
	switch {
	case b.CIDR != "" && hasRange:
		return first, last, fmt.Errorf("cidr: exactly one of cidr or start/stop must be set")
	case b.CIDR != "":
		pfx, err := netip.ParsePrefix(b.CIDR)
		if err != nil {
			return first, last, fmt.Errorf("cidr: invalid CIDR %q", b.CIDR)
		}
		if pfx.Addr().Is4In6() || pfx.Addr().Zone() != "" {
			return first, last, fmt.Errorf("cidr: %q is not a plain IPv4 or IPv6 network", b.CIDR)
		}
		if pfx.Masked() != pfx {
			return first, last, fmt.Errorf("cidr: %q has host bits set", b.CIDR)
		}
		return pfx.Addr(), LastAddr(pfx), nil
	case b.Start == "" || b.Stop == "":
		if b.Start == "" && b.Stop == "" {
			return first, last, fmt.Errorf("cidr: exactly one of cidr or start/stop must be set")
		}
		return first, last, fmt.Errorf("stop: start and stop must be set together")
	}
	if first, err = ParseAddr(b.Start); err != nil {
		return first, last, fmt.Errorf("start: %w", err)
	}
	if last, err = ParseAddr(b.Stop); err != nil {
		return first, last, fmt.Errorf("stop: %w", err)
	}
	if first.Is4() != last.Is4() {
		return first, last, fmt.Errorf("stop: start and stop must be of the same IP family")
	}
	if first.Compare(last) > 0 {
		return first, last, fmt.Errorf("stop: start %s must not be greater than stop %s", first, last)
	}
	return first, last, nil
}

// ParseAddr parses an IPv4 or IPv6 address without zone and rejects IPv4-mapped IPv6.
func ParseAddr(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || ip.Zone() != "" || ip.Is4In6() {
		return netip.Addr{}, fmt.Errorf("invalid IP address %q", s)
	}
	return ip, nil
}

// LastAddr returns the last address of p.
func LastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().AsSlice()
	bits := p.Bits()
	for i := bits; i < len(a)*8; i++ {
		a[i/8] |= 1 << (7 - uint(i%8))
	}
	out, _ := netip.AddrFromSlice(a)
	return out
}

// BlockPrefixes returns the prefixes covering one block exactly: the CIDR itself, or the
// minimal set of prefixes covering start..stop.
func BlockPrefixes(b v1alpha1.IPBlock) ([]netip.Prefix, error) {
	first, last, err := ParseBlock(b)
	if err != nil {
		return nil, fmt.Errorf("parse block: %w", err)
	}
	return rangePrefixes(first, last), nil
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
			if p.Masked().Addr() != start || LastAddr(p).Compare(stop) > 0 {
				break
			}
			best = p
		}
		out = append(out, best)
		last := LastAddr(best)
		if last.Compare(stop) >= 0 {
			return out
		}
		start = last.Next()
	}
}

// Prefixes returns the prefixes of every block of every pool (the speaker's allowed set),
// sorted and without duplicates. Unparseable blocks are skipped (the API server rejects
// them; the pool's status reports anything else).
func Prefixes(pools []*v1alpha1.LoadBalancerIPPool) []netip.Prefix {
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
	slices.SortFunc(out, ComparePrefix)
	return slices.Compact(out)
}

// Containing returns the pools with a block containing ip.
func Containing(pools []*v1alpha1.LoadBalancerIPPool, ip netip.Addr) []*v1alpha1.LoadBalancerIPPool {
	var out []*v1alpha1.LoadBalancerIPPool
	for _, pool := range pools {
		for _, b := range pool.Spec.Blocks {
			first, last, err := ParseBlock(b)
			if err == nil && first.Compare(ip) <= 0 && ip.Compare(last) <= 0 {
				out = append(out, pool)
				break
			}
		}
	}
	return out
}

// ComparePrefix orders prefixes by address, then length.
func ComparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
