package router

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strings"
)

// BIRDOriginateProtocol is the name of the static protocol, per family ("ipv4",
// "ipv6"), whose routes the node sessions of `bgplbctl router-config bird` export
// (`export where proto = "bgplb_originate_ipv4"`): none unless a conformance run
// writes it into BIRD.OriginateConf.
func BIRDOriginateProtocol(family string) string { return "bgplb_originate_" + family }

var _ Originator = BIRD{}

// CanOriginate needs OriginateConf and WriteFile.
func (b BIRD) CanOriginate() error {
	if b.OriginateConf == "" || b.WriteFile == nil {
		return fmt.Errorf("%w: BIRD has no configuration file for it (bgplb-conformance --router-originate-file, "+
			"a file bird.conf includes; the node sessions must export protocol %s)", ErrCannotOriginate, BIRDOriginateProtocol("ipv4"))
	}
	return nil
}

// Originate writes a static protocol per family with a blackhole route for each
// prefix into OriginateConf and reconfigures BIRD (`birdc configure`). BIRD's kernel
// protocols export them as well when they export all, as Debian's default ones do.
func (b BIRD) Originate(ctx context.Context, prefixes []netip.Prefix) error {
	return b.writeOriginate(ctx, birdOriginateConfig(prefixes))
}

// StopOriginating empties OriginateConf and reconfigures BIRD.
func (b BIRD) StopOriginating(ctx context.Context) error {
	return b.writeOriginate(ctx, birdOriginateConfig(nil))
}

func (b BIRD) writeOriginate(ctx context.Context, conf string) error {
	if err := b.CanOriginate(); err != nil {
		return err
	}
	if err := b.WriteFile(ctx, b.OriginateConf, []byte(conf)); err != nil {
		return fmt.Errorf("write %s: %w", b.OriginateConf, err)
	}
	out, err := b.Run(ctx, "configure")
	if err != nil {
		return fmt.Errorf("run birdc configure: %w: %s", err, bytes.TrimSpace(out))
	}
	if !birdReconfigured(out) {
		return fmt.Errorf("birdc configure refused %s: %s", b.OriginateConf, bytes.TrimSpace(out))
	}
	return nil
}

// birdReconfigured reports whether `birdc configure` took the new configuration
// ("Reconfigured", "Reconfiguration in progress", or queued behind one).
func birdReconfigured(out []byte) bool {
	return bytes.Contains(out, []byte("Reconfigured")) || bytes.Contains(out, []byte("Reconfiguration in progress")) ||
		bytes.Contains(out, []byte("queueing new config"))
}

// birdOriginateConfig is OriginateConf's content for prefixes (none: only a comment).
func birdOriginateConfig(prefixes []netip.Prefix) string {
	v4, v6 := splitFamilies(prefixes)
	var s strings.Builder
	s.WriteString("# bgplb-conformance: prefixes the router originates towards the nodes; rewritten by each run\n")
	for _, fam := range byFamily(v4, v6) {
		fmt.Fprintf(&s, "protocol static %s {\n  %s;\n", BIRDOriginateProtocol(fam.name), fam.name)
		for _, p := range fam.prefixes {
			fmt.Fprintf(&s, "  route %s blackhole;\n", p)
		}
		s.WriteString("}\n")
	}
	return s.String()
}

// Advertised returns the prefixes of `show route export <protocol>` of the BGP
// protocol whose neighbour is neighbor.
func (b BIRD) Advertised(ctx context.Context, neighbor netip.Addr, ipv6 bool) ([]netip.Prefix, error) {
	protos, err := b.protocols(ctx)
	if err != nil {
		return nil, err
	}
	name := ""
	for _, p := range protos {
		if p.Address == neighbor {
			name = p.name
		}
	}
	if name == "" {
		return nil, fmt.Errorf("BIRD has no BGP protocol with neighbour %s", neighbor)
	}
	out, err := b.Run(ctx, "show route export "+name)
	if err != nil {
		return nil, fmt.Errorf("run birdc show route export %s: %w", name, err)
	}
	return parseBIRDRouteList(out, ipv6), nil
}

// parseBIRDRouteList returns the networks of a `show route` listing of one family.
func parseBIRDRouteList(out []byte, ipv6 bool) []netip.Prefix {
	var ps []netip.Prefix
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(sc.Text(), " ") || strings.HasPrefix(sc.Text(), "\t") {
			continue
		}
		if p, err := netip.ParsePrefix(f[0]); err == nil && p.Addr().Is6() == ipv6 {
			ps = append(ps, p)
		}
	}
	return sortPrefixes(ps)
}
