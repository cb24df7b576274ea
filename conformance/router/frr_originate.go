package router

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

// The FRR configuration Originate adds: one prefix list per family, `network`
// statements, and a permit entry that matches the prefix list in front of each
// outgoing route-map of the router's neighbours (the lab's NODES-OUT, `bgplbctl
// router-config frr`'s BGPLB-OUT: both deny everything at sequence 10).
const (
	frrOriginateList4 = "BGPLB-CONFORMANCE-ORIGINATE"
	frrOriginateList6 = "BGPLB-CONFORMANCE-ORIGINATE6"
	frrOriginateSeq4  = 1
	frrOriginateSeq6  = 2
)

var _ Originator = FRR{}

// CanOriginate is nil: vtysh configures any FRR.
func (f FRR) CanOriginate() error { return nil }

// Originate adds `network` statements for prefixes to `router bgp` and lets them
// through the outgoing route-maps of the neighbours (`show bgp neighbors json`). FRR
// advertises such a network although its RIB lacks the prefix only under `no bgp
// network import-check` (the lab's router has it).
//
// On a router that checks networks against its RIB (`bgp network import-check`, FRR's
// default since 7.4) Originate changes nothing and returns an error wrapping
// ErrCannotOriginate.
func (f FRR) Originate(ctx context.Context, prefixes []netip.Prefix) error {
	running, err := f.Run(ctx, "show running-config")
	if err != nil {
		return fmt.Errorf("read the running config: %w", err)
	}
	if !bytes.Contains(running, []byte("\n no bgp network import-check\n")) {
		return fmt.Errorf("%w: this FRR advertises a network only when its RIB holds the prefix "+
			"(bgp network import-check); `no bgp network import-check` under `router bgp` lets the suite originate test prefixes", ErrCannotOriginate)
	}
	if err := f.stop(ctx, running); err != nil {
		return err
	}
	maps, err := f.outRouteMaps(ctx)
	if err != nil {
		return err
	}
	if _, err := f.Run(ctx, frrOriginateConfig(prefixes, maps)); err != nil {
		return fmt.Errorf("configure originated prefixes: %w", err)
	}
	return nil
}

// frrOriginateConfig is the vtysh input that originates prefixes through the
// outgoing route-maps maps.
func frrOriginateConfig(prefixes []netip.Prefix, maps []string) string {
	v4, v6 := splitFamilies(prefixes)
	var b strings.Builder
	b.WriteString("configure terminal\n")
	for i, p := range v4 {
		fmt.Fprintf(&b, "ip prefix-list %s seq %d permit %s\n", frrOriginateList4, 5*(i+1), p)
	}
	for i, p := range v6 {
		fmt.Fprintf(&b, "ipv6 prefix-list %s seq %d permit %s\n", frrOriginateList6, 5*(i+1), p)
	}
	for _, m := range maps {
		if len(v4) > 0 {
			fmt.Fprintf(&b, "route-map %s permit %d\n match ip address prefix-list %s\nexit\n", m, frrOriginateSeq4, frrOriginateList4)
		}
		if len(v6) > 0 {
			fmt.Fprintf(&b, "route-map %s permit %d\n match ipv6 address prefix-list %s\nexit\n", m, frrOriginateSeq6, frrOriginateList6)
		}
	}
	b.WriteString("router bgp\n")
	for _, fam := range byFamily(v4, v6) {
		fmt.Fprintf(&b, "address-family %s unicast\n", fam.name)
		for _, p := range fam.prefixes {
			fmt.Fprintf(&b, "network %s\n", p)
		}
		b.WriteString("exit-address-family\n")
	}
	b.WriteString("end")
	return b.String()
}

// outRouteMaps returns the outgoing route-maps of the router's neighbours, sorted.
func (f FRR) outRouteMaps(ctx context.Context) ([]string, error) {
	var raw map[string]struct {
		AFI map[string]struct {
			RouteMapOut string `json:"routeMapForOutgoingAdvertisements"`
		} `json:"addressFamilyInfo"`
	}
	if err := f.json(ctx, "show bgp neighbors json", &raw); err != nil {
		return nil, err
	}
	var maps []string
	for _, n := range raw {
		for _, af := range n.AFI {
			if af.RouteMapOut != "" && !slices.Contains(maps, af.RouteMapOut) {
				maps = append(maps, af.RouteMapOut)
			}
		}
	}
	slices.Sort(maps)
	return maps, nil
}

// StopOriginating removes what Originate configured, as `show running-config` shows it.
func (f FRR) StopOriginating(ctx context.Context) error {
	running, err := f.Run(ctx, "show running-config")
	if err != nil {
		return fmt.Errorf("read the running config: %w", err)
	}
	return f.stop(ctx, running)
}

func (f FRR) stop(ctx context.Context, running []byte) error {
	cmd := frrStopConfig(running)
	if cmd == "" {
		return nil
	}
	if _, err := f.Run(ctx, cmd); err != nil {
		return fmt.Errorf("remove originated prefixes: %w", err)
	}
	return nil
}

var (
	frrPrefixListLine = regexp.MustCompile(`^(ip|ipv6) prefix-list (` + frrOriginateList4 + `|` + frrOriginateList6 + `) seq \d+ permit (\S+)$`)
	frrRouteMapLine   = regexp.MustCompile(`^route-map (\S+ (?:permit|deny) \d+)$`)
	frrMatchLine      = regexp.MustCompile(`^ match (?:ip|ipv6) address prefix-list (` + frrOriginateList4 + `|` + frrOriginateList6 + `)$`)
)

// frrStopConfig reads a running config and returns the vtysh input that removes what
// Originate added to it ("" when it holds nothing of it).
func frrStopConfig(running []byte) string {
	var (
		v4, v6 []netip.Prefix
		maps   []string // "NAME SEQ"
		curMap string
		lists  = map[string]bool{}
	)
	sc := bufio.NewScanner(bytes.NewReader(running))
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " ")
		if m := frrPrefixListLine.FindStringSubmatch(line); m != nil {
			lists[m[1]+" prefix-list "+m[2]] = true
			if p, err := netip.ParsePrefix(m[3]); err == nil {
				if m[1] == "ip" {
					v4 = append(v4, p)
				} else {
					v6 = append(v6, p)
				}
			}
			continue
		}
		if m := frrRouteMapLine.FindStringSubmatch(line); m != nil {
			curMap = m[1]
			continue
		}
		if line == "" || (line[0] != ' ') {
			curMap = ""
			continue
		}
		if curMap != "" && frrMatchLine.MatchString(line) && !slices.Contains(maps, curMap) {
			maps = append(maps, curMap)
		}
	}
	if len(v4)+len(v6)+len(maps)+len(lists) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("configure terminal\n")
	if len(v4)+len(v6) > 0 {
		b.WriteString("router bgp\n")
		for _, fam := range byFamily(v4, v6) {
			fmt.Fprintf(&b, "address-family %s unicast\n", fam.name)
			for _, p := range fam.prefixes {
				fmt.Fprintf(&b, "no network %s\n", p)
			}
			b.WriteString("exit-address-family\n")
		}
		b.WriteString("exit\n")
	}
	for _, m := range maps {
		fmt.Fprintf(&b, "no route-map %s\n", m)
	}
	names := make([]string, 0, len(lists))
	for l := range lists {
		names = append(names, l)
	}
	slices.Sort(names)
	for _, l := range names {
		fmt.Fprintf(&b, "no %s\n", l)
	}
	b.WriteString("end")
	return b.String()
}

// Advertised returns the prefixes of `show bgp <afi> unicast neighbors <addr>
// advertised-routes json`.
func (f FRR) Advertised(ctx context.Context, neighbor netip.Addr, ipv6 bool) ([]netip.Prefix, error) {
	afi := "ipv4"
	if ipv6 {
		afi = "ipv6"
	}
	out, err := f.Run(ctx, fmt.Sprintf("show bgp %s unicast neighbors %s advertised-routes json", afi, neighbor))
	if err != nil {
		return nil, fmt.Errorf("read the routes advertised to %s: %w", neighbor, err)
	}
	return parseFRRAdvertised(out)
}

func parseFRRAdvertised(out []byte) ([]netip.Prefix, error) {
	var raw struct {
		Advertised map[string]json.RawMessage `json:"advertisedRoutes"`
		Warning    string                     `json:"warning"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		return nil, fmt.Errorf("decode advertised-routes output: %w: %.200s", err, out)
	}
	var ps []netip.Prefix
	for k := range raw.Advertised {
		if p, err := netip.ParsePrefix(k); err == nil {
			ps = append(ps, p)
		}
	}
	return sortPrefixes(ps), nil
}
