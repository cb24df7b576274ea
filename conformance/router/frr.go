package router

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Vtysh runs one vtysh command and returns its output. For the lab it is
// `vtysh --vty_socket DIR -c CMD`; for a remote router it could run over SSH.
type Vtysh func(ctx context.Context, command string) ([]byte, error)

// FRR reads an FRR router (tested with FRR 8.4) through vtysh JSON output.
type FRR struct {
	Run Vtysh
}

var _ Router = FRR{}

// Name returns "FRR <version>".
func (f FRR) Name(ctx context.Context) string {
	out, err := f.Run(ctx, "show version")
	if err != nil {
		return "FRR (version unknown)"
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "FRRouting ") {
			return strings.TrimSpace(line)
		}
	}
	return "FRR"
}

func (f FRR) json(ctx context.Context, command string, v any) error {
	out, err := f.Run(ctx, command)
	if err != nil {
		return fmt.Errorf("run vtysh %q: %w", command, err)
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("decode vtysh %q output: %w: %.200s", command, err, out)
	}
	return nil
}

func family(p netip.Prefix) string {
	if p.Addr().Is4() {
		return "ipv4"
	}
	return "ipv6"
}

type frrText struct {
	String string `json:"string"`
}

type frrPath struct {
	ASPath    frrText  `json:"aspath"`
	Origin    string   `json:"origin"`
	Community *frrText `json:"community"`
	LargeComm *frrText `json:"largeCommunity"`
	ExtComm   *frrText `json:"extendedCommunity"`
	LocPrf    *uint32  `json:"locPrf"`
	Multipath bool     `json:"multipath"`
	Stale     bool     `json:"stale"`
	Valid     bool     `json:"valid"`
	Bestpath  *struct {
		Overall bool `json:"overall"`
	} `json:"bestpath"`
	Nexthops []struct {
		IP   string `json:"ip"`
		Used bool   `json:"used"`
	} `json:"nexthops"`
	Peer struct {
		PeerID string `json:"peerId"`
	} `json:"peer"`
}

var linkBandwidthRE = regexp.MustCompile(`LB:\d+:(\d+)`)

// Paths returns the paths of `show bgp <afi> unicast <prefix> json`.
func (f FRR) Paths(ctx context.Context, prefix netip.Prefix) ([]Path, error) {
	var raw struct {
		Prefix string    `json:"prefix"`
		Paths  []frrPath `json:"paths"`
	}
	if err := f.json(ctx, fmt.Sprintf("show bgp %s unicast %s json", family(prefix), prefix), &raw); err != nil {
		return nil, err
	}
	if raw.Prefix != "" && raw.Prefix != prefix.String() {
		// FRR answers a longest-prefix match when the exact prefix is missing.
		return nil, nil
	}
	var out []Path
	for _, rp := range raw.Paths {
		p := Path{
			PeerASPath: rp.ASPath.String,
			Origin:     rp.Origin,
			Multipath:  rp.Multipath,
			Stale:      rp.Stale,
			Best:       rp.Bestpath != nil && rp.Bestpath.Overall,
		}
		if rp.LocPrf != nil {
			p.LocalPref = *rp.LocPrf
		}
		if rp.Community != nil {
			p.Communities = strings.Fields(rp.Community.String)
		}
		if rp.LargeComm != nil {
			p.LargeCommunities = strings.Fields(rp.LargeComm.String)
		}
		if rp.ExtComm != nil {
			p.ExtCommunities = rp.ExtComm.String
			if m := linkBandwidthRE.FindStringSubmatch(rp.ExtComm.String); m != nil {
				p.LinkBandwidth, _ = strconv.ParseFloat(m[1], 64) // the regexp admits only digits
			}
		}
		for _, nh := range rp.Nexthops {
			a, err := netip.ParseAddr(nh.IP)
			if err != nil {
				continue
			}
			if a.Is6() && a.IsLinkLocalUnicast() && len(rp.Nexthops) > 1 {
				continue // the global next hop is the one that counts
			}
			p.NextHop = a
			break
		}
		out = append(out, p)
	}
	return out, nil
}

// FIBNextHops returns the next hops of the installed route for prefix from
// `show ip[v6] route <prefix> json`, counting only next hops marked as in the FIB.
func (f FRR) FIBNextHops(ctx context.Context, prefix netip.Prefix) ([]netip.Addr, error) {
	cmd := "show ip route %s json"
	if prefix.Addr().Is6() {
		cmd = "show ipv6 route %s json"
	}
	var raw map[string][]struct {
		Protocol  string `json:"protocol"`
		Installed bool   `json:"installed"`
		Nexthops  []struct {
			IP  string `json:"ip"`
			FIB bool   `json:"fib"`
		} `json:"nexthops"`
	}
	if err := f.json(ctx, fmt.Sprintf(cmd, prefix), &raw); err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, r := range raw[prefix.String()] {
		if !r.Installed {
			continue
		}
		for _, nh := range r.Nexthops {
			if !nh.FIB {
				continue
			}
			if a, err := netip.ParseAddr(nh.IP); err == nil && !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, nil
}

// Neighbors returns the sessions of `show bgp neighbors json`.
func (f FRR) Neighbors(ctx context.Context) ([]Neighbor, error) {
	var raw map[string]struct {
		RemoteAS           uint32 `json:"remoteAs"`
		BGPState           string `json:"bgpState"`
		ConnectionsDropped int    `json:"connectionsDropped"`
		UpEpoch            int64  `json:"bgpTimerUpEstablishedEpoch"`
		AFI                map[string]struct {
			Accepted int `json:"acceptedPrefixCounter"`
		} `json:"addressFamilyInfo"`
	}
	if err := f.json(ctx, "show bgp neighbors json", &raw); err != nil {
		return nil, err
	}
	var out []Neighbor
	for addr, n := range raw {
		a, err := netip.ParseAddr(strings.TrimPrefix(addr, "*"))
		if err != nil {
			continue // peer-group entries and interface names
		}
		nb := Neighbor{Address: a, RemoteASN: n.RemoteAS, State: n.BGPState, ConnectionsDropped: n.ConnectionsDropped}
		if n.BGPState == "Established" && n.UpEpoch > 0 {
			nb.EstablishedSince = time.Unix(n.UpEpoch, 0)
		}
		for _, af := range n.AFI {
			nb.PrefixesReceived += af.Accepted
		}
		out = append(out, nb)
	}
	slices.SortFunc(out, func(a, b Neighbor) int { return a.Address.Compare(b.Address) })
	return out, nil
}

// ClearSessions runs `clear bgp *`.
func (f FRR) ClearSessions(ctx context.Context) error {
	if _, err := f.Run(ctx, "clear bgp *"); err != nil {
		return fmt.Errorf("clear bgp sessions: %w", err)
	}
	return nil
}
