package router

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Birdc runs one birdc command and returns its output. For the lab it is
// `birdc -s SOCKET CMD...`; for a remote router it could run over SSH.
type Birdc func(ctx context.Context, command string) ([]byte, error)

// IPRoute runs `ip ARGS...` where the router forwards (its network namespace or host)
// and returns the output.
type IPRoute func(ctx context.Context, args ...string) ([]byte, error)

// BIRD reads a BIRD 2 router (tested with BIRD 2.0.12) through birdc's text output,
// and its forwarding table through iproute2's JSON output: BIRD has no view of the
// kernel's FIB of its own. Route and protocol times are read in BIRD's "iso long"
// format (`timeformat route iso long; timeformat protocol iso long;`) when configured,
// else only the time of day is known.
type BIRD struct {
	Run Birdc
	IP  IPRoute
	// OriginateConf is the path, where BIRD runs, of a file that bird.conf includes
	// and WriteFile can replace; empty if there is none. Originate writes static
	// protocols there, named so that `bgplbctl router-config bird`'s node sessions
	// export their routes (see BIRDOriginateProtocol).
	OriginateConf string
	// WriteFile replaces the file at path where BIRD runs with data.
	WriteFile func(ctx context.Context, path string, data []byte) error
}

var _ Router = BIRD{}

// Name returns "BIRD <version>".
func (b BIRD) Name(ctx context.Context) string {
	out, err := b.Run(ctx, "show status")
	if err != nil {
		return "BIRD (version unknown)"
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "BIRD ") {
			return strings.TrimSuffix(strings.TrimSpace(line), " ready.")
		}
	}
	return "BIRD"
}

// birdRouteHead is the first line of a route: `<prefix>? unicast [<proto> <since> from
// <addr>] * (100) [AS64513i]` (the prefix only on the first route of a network).
var birdRouteHead = regexp.MustCompile(`^(\S+)?\s+unicast \[(\S+) [^\]]*\]( \*)? \((\d+)(?:/\d+)?\)`)

// Paths returns the routes of `show route <prefix> all` (exact prefix, every protocol).
func (b BIRD) Paths(ctx context.Context, prefix netip.Prefix) ([]Path, error) {
	out, err := b.Run(ctx, fmt.Sprintf("show route %s all", prefix))
	if bytes.Contains(out, []byte("Network not found")) {
		return nil, nil // birdc exits 1 for a network the table does not hold
	}
	if err != nil {
		return nil, fmt.Errorf("run birdc show route %s: %w", prefix, err)
	}
	return parseBIRDRoutes(out, prefix), nil
}

func parseBIRDRoutes(out []byte, prefix netip.Prefix) []Path {
	var (
		paths []Path
		cur   *Path
		net   string
	)
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if m := birdRouteHead.FindStringSubmatch(line); m != nil {
			if m[1] != "" {
				net = m[1]
			}
			paths = append(paths, Path{Best: m[3] != ""})
			cur = &paths[len(paths)-1]
			if net != prefix.String() {
				cur = nil // another network (never for an exact query)
				paths = paths[:len(paths)-1]
			}
			continue
		}
		if cur == nil {
			continue
		}
		key, val, ok := birdAttr(line)
		if !ok {
			continue
		}
		switch key {
		case "BGP.origin":
			cur.Origin = val
			if val == "Incomplete" {
				cur.Origin = "incomplete"
			}
		case "BGP.as_path":
			cur.PeerASPath = val
		case "BGP.next_hop":
			if a, err := netip.ParseAddr(strings.Fields(val + " ")[0]); err == nil {
				cur.NextHop = a
			}
		case "BGP.local_pref":
			if v, err := strconv.ParseUint(val, 10, 32); err == nil {
				cur.LocalPref = uint32(v)
			}
		case "BGP.community":
			cur.Communities = birdTuples(val, ":")
		case "BGP.large_community":
			cur.LargeCommunities = birdTuples(val, ":")
		case "BGP.ext_community":
			cur.ExtCommunities = val
			cur.LinkBandwidth = birdLinkBandwidth(val)
		}
	}
	// BIRD installs every path of the best one's AS path length class as ECMP only in
	// the kernel protocol (merge paths); in its RIB the other paths are alternatives.
	for i := range paths {
		paths[i].Multipath = !paths[i].Best && len(paths) > 1
	}
	return paths
}

// birdTuples turns "(64512,100) (64512,200)" into ["64512:100", "64512:200"], and
// "(64512, 1, 2)" into ["64512:1:2"] with sep ":".
func birdTuples(val, sep string) []string {
	var out []string
	for _, t := range strings.Split(val, ")") {
		t = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(t), "("))
		if t == "" {
			continue
		}
		parts := strings.Split(t, ",")
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		out = append(out, strings.Join(parts, sep))
	}
	return out
}

// birdLinkBandwidth decodes the non-transitive link-bandwidth extended community
// (type 0x40, subtype 0x04: 2-byte AS, then the bandwidth in bytes/s as an IEEE 754
// float). BIRD 2.0.12 does not know it and prints "(unknown 0x4004, <AS>, <float bits
// as a decimal integer>)".
func birdLinkBandwidth(val string) float64 {
	for _, t := range birdTuples(val, ",") {
		f := strings.Split(t, ",")
		if len(f) != 3 || f[0] != "unknown 0x4004" {
			continue
		}
		bits, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			continue
		}
		return float64(math.Float32frombits(uint32(bits)))
	}
	return 0
}

// FIBNextHops returns the gateways of the kernel route for exactly prefix
// (`ip -j route show exact`), which BIRD's kernel protocol installed.
func (b BIRD) FIBNextHops(ctx context.Context, prefix netip.Prefix) ([]netip.Addr, error) {
	fam := "-4"
	if prefix.Addr().Is6() {
		fam = "-6"
	}
	out, err := b.IP(ctx, fam, "-j", "route", "show", "exact", prefix.String())
	if err != nil {
		return nil, fmt.Errorf("ip route show exact %s: %w", prefix, err)
	}
	return parseIPRouteNextHops(out)
}

func parseIPRouteNextHops(out []byte) ([]netip.Addr, error) {
	var routes []struct {
		Gateway  string `json:"gateway"`
		Nexthops []struct {
			Gateway string `json:"gateway"`
		} `json:"nexthops"`
	}
	if len(bytes.TrimSpace(out)) == 0 {
		return nil, nil
	}
	if err := json.Unmarshal(out, &routes); err != nil {
		return nil, fmt.Errorf("decode ip -j route output: %w: %.200s", err, out)
	}
	var hops []netip.Addr
	add := func(s string) {
		if a, err := netip.ParseAddr(s); err == nil && !slices.Contains(hops, a) {
			hops = append(hops, a)
		}
	}
	for _, r := range routes {
		add(r.Gateway)
		for _, nh := range r.Nexthops {
			add(nh.Gateway)
		}
	}
	slices.SortFunc(hops, netip.Addr.Compare)
	return hops, nil
}

// birdProtocol is one BGP protocol of `show protocols all`.
type birdProtocol struct {
	name string
	Neighbor
}

// Neighbors returns the BGP protocols of `show protocols all` that have a single
// neighbour address (dynamic instances and static neighbours, not the listening
// templates of a neighbour range).
func (b BIRD) Neighbors(ctx context.Context) ([]Neighbor, error) {
	protos, err := b.protocols(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Neighbor, 0, len(protos))
	for _, p := range protos {
		out = append(out, p.Neighbor)
	}
	slices.SortFunc(out, func(a, b Neighbor) int { return a.Address.Compare(b.Address) })
	return out, nil
}

func (b BIRD) protocols(ctx context.Context) ([]birdProtocol, error) {
	out, err := b.Run(ctx, "show protocols all")
	if err != nil {
		return nil, fmt.Errorf("run birdc show protocols all: %w", err)
	}
	return parseBIRDProtocols(out, time.Now()), nil
}

// parseBIRDProtocols reads the protocol table with details; now dates a since time
// that has only the time of day.
func parseBIRDProtocols(out []byte, now time.Time) []birdProtocol {
	var (
		res []birdProtocol
		cur *birdProtocol
	)
	flush := func() {
		if cur != nil && cur.Address.IsValid() {
			res = append(res, *cur)
		}
		cur = nil
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "BIRD ") || strings.HasPrefix(line, "Name ") {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			flush()
			f := strings.Fields(line)
			// name proto table state since... info
			if len(f) >= 5 && f[1] == "BGP" {
				cur = &birdProtocol{name: f[0]}
				cur.EstablishedSince = birdSince(f[4:], now)
			}
			continue
		}
		if cur == nil {
			continue
		}
		key, val, ok := birdAttr(line)
		if !ok {
			continue
		}
		switch key {
		case "BGP state":
			cur.State = val
		case "Neighbor address":
			if a, err := netip.ParseAddr(strings.Fields(val + " ")[0]); err == nil {
				cur.Address = a
			}
		case "Neighbor AS":
			if v, err := strconv.ParseUint(val, 10, 32); err == nil {
				cur.RemoteASN = uint32(v)
			}
		case "Routes":
			// "1 imported, 0 exported, 1 preferred"
			if n, err := strconv.Atoi(strings.Fields(val)[0]); err == nil {
				cur.PrefixesReceived += n
			}
		}
	}
	flush()
	for i := range res {
		if res[i].State != "Established" {
			res[i].EstablishedSince = time.Time{}
		}
	}
	return res
}

// birdSince parses the protocol table's since column: "2026-12-03 07:12:33.123" (iso
// long) or "07:12:33.123" (default, today).
func birdSince(f []string, now time.Time) time.Time {
	if len(f) >= 2 {
		if t, err := time.ParseInLocation("2006-01-02 15:04:05", f[0]+" "+f[1], time.Local); err == nil {
			return t
		}
	}
	if t, err := time.ParseInLocation("15:04:05", f[0], time.Local); err == nil {
		y, m, d := now.Date()
		return time.Date(y, m, d, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.Local)
	}
	return time.Time{}
}

// ClearSessions restarts every BGP protocol that has a neighbour (a hard reset of
// each session, like FRR's `clear bgp *`).
func (b BIRD) ClearSessions(ctx context.Context) error {
	protos, err := b.protocols(ctx)
	if err != nil {
		return err
	}
	for _, p := range protos {
		if _, err := b.Run(ctx, "restart "+p.name); err != nil {
			return fmt.Errorf("restart bird protocol %s: %w", p.name, err)
		}
	}
	return nil
}

// birdAttr splits an indented "Key: value" line of birdc's detailed output.
func birdAttr(line string) (key, val string, ok bool) {
	key, val, ok = strings.Cut(strings.TrimSpace(line), ":")
	return key, strings.TrimSpace(val), ok
}
