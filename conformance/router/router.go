package router

import (
	"context"
	"net/netip"
	"slices"
	"time"
)

// Router is a BGP router the suite observes. Implementations must be safe for
// concurrent use.
type Router interface {
	// Name identifies the router implementation and version, for the report.
	Name(ctx context.Context) string
	// Paths returns every BGP path the router holds for exactly prefix (empty when
	// the prefix is not in its RIB).
	Paths(ctx context.Context, prefix netip.Prefix) ([]Path, error)
	// FIBNextHops returns the next hops the router installed in its forwarding table
	// for exactly prefix (empty when not installed), sorted.
	FIBNextHops(ctx context.Context, prefix netip.Prefix) ([]netip.Addr, error)
	// Neighbors returns the router's BGP sessions.
	Neighbors(ctx context.Context) ([]Neighbor, error)
	// ClearSessions resets every BGP session (hard reset), like `clear bgp *`.
	ClearSessions(ctx context.Context) error
}

// Path is one BGP path of a prefix.
type Path struct {
	NextHop          netip.Addr
	PeerASPath       string // AS path as text, e.g. "64513"
	Origin           string // "IGP", "EGP", "incomplete"
	Communities      []string
	LargeCommunities []string
	ExtCommunities   string // as the router prints them
	// LinkBandwidth is the link-bandwidth extended community in bytes/s, 0 if absent.
	LinkBandwidth float64
	LocalPref     uint32
	Best          bool
	Multipath     bool
	Stale         bool
}

// Neighbor is one BGP session of the router.
type Neighbor struct {
	Address            netip.Addr
	RemoteASN          uint32
	State              string // "Established", "Active", "Idle", ...
	ConnectionsDropped int
	// EstablishedSince is when the session last became Established (zero if not).
	EstablishedSince time.Time
	PrefixesReceived int
}

// NextHops returns the next hops of paths, sorted and without duplicates.
func NextHops(paths []Path) []netip.Addr {
	seen := map[netip.Addr]bool{}
	var out []netip.Addr
	for _, p := range paths {
		if !seen[p.NextHop] {
			seen[p.NextHop] = true
			out = append(out, p.NextHop)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}
