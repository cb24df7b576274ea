package router

import (
	"context"
	"errors"
	"net/netip"
	"slices"
)

// Originator is the optional part of a router adapter that makes the router send the
// nodes prefixes of its own, for the tests of what a node does with routes it receives
// (it must install none, and shut a session down past its max-prefix limit). A suite
// whose router adapter does not implement it, or whose CanOriginate returns an error,
// skips those tests with that reason. Implementations must be safe for concurrent use;
// the suite runs one originating test at a time.
type Originator interface {
	// CanOriginate returns nil when Originate can work, else why not (for the skip
	// reason). It does not contact the router.
	CanOriginate() error
	// Originate makes the router advertise exactly prefixes (IPv4 and IPv6 alike) to
	// every node session, replacing what an earlier Originate added. It returns once
	// the router's configuration holds them; the updates follow asynchronously.
	Originate(ctx context.Context, prefixes []netip.Prefix) error
	// StopOriginating withdraws every prefix Originate added and removes the
	// configuration it added. It is a no-op when nothing is originated.
	StopOriginating(ctx context.Context) error
	// Advertised returns the prefixes of the given family (IPv6 when ipv6) that the
	// router currently sends the neighbor (its Adj-RIB-Out after export policy), sorted.
	Advertised(ctx context.Context, neighbor netip.Addr, ipv6 bool) ([]netip.Prefix, error)
}

// ErrCannotOriginate is wrapped by CanOriginate's errors.
var ErrCannotOriginate = errors.New("the router adapter cannot originate prefixes")

// familyPrefixes are the prefixes of one address family, with the family's name as
// FRR's address-family and BIRD's channel spell it.
type familyPrefixes struct {
	name     string // "ipv4" or "ipv6"
	prefixes []netip.Prefix
}

// byFamily groups v4 and v6 (splitFamilies' results) by family, leaving out an empty one.
func byFamily(v4, v6 []netip.Prefix) []familyPrefixes {
	var out []familyPrefixes
	if len(v4) > 0 {
		out = append(out, familyPrefixes{"ipv4", v4})
	}
	if len(v6) > 0 {
		out = append(out, familyPrefixes{"ipv6", v6})
	}
	return out
}

// splitFamilies returns the IPv4 and the IPv6 prefixes of ps, masked, sorted and
// without duplicates.
func splitFamilies(ps []netip.Prefix) (v4, v6 []netip.Prefix) {
	for _, p := range ps {
		p = p.Masked()
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	cmp := func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	}
	slices.SortFunc(v4, cmp)
	slices.SortFunc(v6, cmp)
	return slices.Compact(v4), slices.Compact(v6)
}

// sortPrefixes sorts ps by address, then length.
func sortPrefixes(ps []netip.Prefix) []netip.Prefix {
	v4, v6 := splitFamilies(ps)
	return append(v4, v6...)
}
