package main

import (
	"bytes"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite the router-config golden files in testdata/")

var params = routerParams{
	RouterASN: 64512, NodeASN: 64513,
	NodeCIDRs: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24"), netip.MustParsePrefix("2001:db8:f::/64")},
	Pools:     []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8:ffff::/112")},
	Nodes:     []netip.Addr{netip.MustParseAddr("198.18.0.11")},
}

// withPods is params for a cluster whose nodes export their pod CIDRs.
var withPods = func() routerParams {
	p := params
	p.PodCIDRs = []netip.Prefix{netip.MustParsePrefix("198.19.1.0/24"), netip.MustParsePrefix("2001:db8:1:1::/64")}
	return p
}()

func render(t *testing.T, flavour string, p routerParams) string {
	t.Helper()
	var b bytes.Buffer
	if err := writeRouterConfig(&b, flavour, p); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func wantLines(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, out)
		}
	}
}

// parseWith runs a router's own configuration parser on conf; it fails the test when
// the router rejects it. The routers are Debian packages the Makefile installs.
func parseWith(t *testing.T, conf string, name string, args ...string) {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not installed (make deps installs it): %v", name, err)
	}
	if b, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s rejects the configuration: %v\n%s\n%s", name, strings.Join(args, " "), err, b, conf)
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFRRConfig(t *testing.T) {
	out := render(t, "frr", params)
	wantLines(t, "FRR config", out,
		"router bgp 64512",
		"bgp listen range 198.18.0.0/24 peer-group BGPLB",
		"bgp listen range 2001:db8:f::/64 peer-group BGPLB",
		"neighbor BGPLB remote-as 64513",
		"ip prefix-list BGPLB-VIPS-V4 seq 5 permit 203.0.113.0/24 ge 32 le 32",
		"ipv6 prefix-list BGPLB-VIPS-V6 seq 5 permit 2001:db8:ffff::/112 ge 128 le 128",
		"route-map BGPLB-IN deny 100",
		"neighbor BGPLB route-map BGPLB-IN in",
		"maximum-paths 64",
		"bgp community-list standard BGPLB-GSHUT seq 5 permit graceful-shutdown",
		"route-map BGPLB-IN permit 5\n match community BGPLB-GSHUT\n set local-preference 0\n on-match next\n",
	)
	if strings.Contains(out, "198.19.") {
		t.Errorf("FRR config accepts pod CIDRs nobody asked for:\n%s", out)
	}
	ibgp := params
	ibgp.NodeASN = 64512
	wantLines(t, "iBGP FRR config", render(t, "frr", ibgp), "maximum-paths ibgp 64")

	pods := render(t, "frr", withPods)
	wantLines(t, "FRR config with pod CIDRs", pods,
		"ip prefix-list BGPLB-VIPS-V4 seq 10 permit 198.19.1.0/24\n",
		"ipv6 prefix-list BGPLB-VIPS-V6 seq 10 permit 2001:db8:1:1::/64\n",
	)
	withBFD := params
	withBFD.BFD = &routerBFD{IntervalMs: 300, Multiplier: 3}
	bfdConf := render(t, "frr", withBFD)
	wantLines(t, "FRR config with BFD", bfdConf, " neighbor BGPLB bfd profile BGPLB\n",
		"bfd\n profile BGPLB\n  receive-interval 300\n  transmit-interval 300\n  detect-multiplier 3\n")
	for _, conf := range []string{out, pods, bfdConf} {
		parseWith(t, conf, "vtysh", "-C", "-f", writeFile(t, t.TempDir(), "frr.conf", conf))
	}
}

// TestBIRDConfig checks the BIRD output with BIRD's own parser (bird -p): the snippet
// included from Debian's default bird.conf (which has its own device and kernel
// protocols), and the standalone bird.conf alone.
func TestBIRDConfig(t *testing.T) {
	snippet := render(t, "bird", withPods)
	wantLines(t, "BIRD snippet", snippet,
		"neighbor range 198.18.0.0/24 as 64513;",
		"if net ~ [ 203.0.113.0/24{32,32}, 198.19.1.0/24 ] then accept;",
		"if net ~ [ 2001:db8:ffff::/112{128,128}, 2001:db8:1:1::/64 ] then accept;",
		"export where proto = \"bgplb_originate_ipv4\";",
		"export where proto = \"bgplb_originate_ipv6\";",
		"error wait time 1, 10;",
		"graceful restart aware;",
		"if (65535, 0) ~ bgp_community then bgp_local_pref = 0;",
		"merge paths on;", // in the instructions
	)
	for _, unwanted := range []string{"\nprotocol kernel", "\nprotocol device"} {
		if strings.Contains(snippet, unwanted) {
			t.Errorf("BIRD snippet has %q, which clashes with the including bird.conf's own:\n%s", unwanted, snippet)
		}
	}
	debian, err := os.ReadFile("testdata/debian-bird.conf")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	inc := writeFile(t, dir, "bgplb.conf", snippet)
	main := writeFile(t, dir, "bird.conf", string(debian)+"\ninclude \""+inc+"\";\n")
	parseWith(t, snippet, "bird", "-p", "-c", main)

	withBFD := params
	withBFD.BFD = &routerBFD{IntervalMs: 300, Multiplier: 3}
	bfdSnippet := render(t, "bird", withBFD)
	wantLines(t, "BIRD snippet with BFD", bfdSnippet, "protocol bfd bgplb_bfd {", "min rx interval 300 ms;", "multiplier 3;", "bfd on;")
	parseWith(t, bfdSnippet, "bird", "-p", "-c", writeFile(t, dir, "bird-bfd.conf",
		string(debian)+"\ninclude \""+writeFile(t, dir, "bgplb-bfd.conf", bfdSnippet)+"\";\n"))

	alone := params
	alone.Standalone = true
	standalone := render(t, "bird", alone)
	wantLines(t, "standalone bird.conf", standalone, "protocol device", "protocol kernel bgplb_kernel_ipv4", "merge paths on;")
	parseWith(t, standalone, "bird", "-p", "-c", writeFile(t, dir, "standalone.conf", standalone))

	// A standalone configuration next to Debian's is what the snippet avoids: BIRD
	// refuses a second kernel protocol on the same table. The test keeps that reason true.
	both := writeFile(t, dir, "both.conf", string(debian)+"\ninclude \""+writeFile(t, dir, "sa.conf", standalone)+"\";\n")
	if b, err := exec.Command("bird", "-p", "-c", both).CombinedOutput(); err == nil {
		t.Errorf("BIRD accepted two kernel protocols on one table; the snippet could carry its own:\n%s", b)
	}
}

func TestOPNsenseInstructions(t *testing.T) {
	opn := render(t, "opnsense", withPods)
	wantLines(t, "OPNsense instructions", opn, "BGP AS Number 64512", "198.18.0.11", "203.0.113.0/24  ge 32 le 32", "198.19.1.0/24   (IP version IPv4, a node's pod CIDR)", "bgp listen range")
	var b bytes.Buffer
	if err := writeRouterConfig(&b, "cisco", params); err == nil || !strings.Contains(err.Error(), "routeros") {
		t.Errorf("unknown router flavour: err = %v, want one listing the flavours", err)
	}
}

// TestGoldenRouterConfigs compares the outputs Debian has no parser for (VyOS, RouterOS)
// with reviewed files; go test -run TestGoldenRouterConfigs -update rewrites them.
func TestGoldenRouterConfigs(t *testing.T) {
	for _, flavour := range []string{"vyos", "routeros"} {
		for name, p := range map[string]routerParams{"": params, "-pods": withPods} {
			got := render(t, flavour, p)
			path := filepath.Join("testdata", flavour+name+".golden")
			if *updateGolden {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGoldenRouterConfigs -update)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs from %s:\n%s", flavour, path, got)
			}
		}
	}
}

// TestTTLSecurityRouterConfig: with --ttl-security-hops the FRR and VyOS outputs set
// ttl-security on the peer group and BIRD sets "ttl security on" (with multihop beyond
// one hop, instead of direct); FRR and BIRD accept what we print.
func TestTTLSecurityRouterConfig(t *testing.T) {
	for _, hops := range []uint8{1, 2} {
		p := params
		p.TTLSecurityHops = hops
		frr := render(t, "frr", p)
		wantLines(t, "FRR config with GTSM", frr, fmt.Sprintf(" neighbor BGPLB ttl-security hops %d\n", hops))
		parseWith(t, frr, "vtysh", "-C", "-f", writeFile(t, t.TempDir(), "frr.conf", frr))
		wantLines(t, "VyOS config with GTSM", render(t, "vyos", p), fmt.Sprintf("set protocols bgp peer-group BGPLB ttl-security hops %d\n", hops))

		ibgp := p
		ibgp.NodeASN = ibgp.RouterASN
		ibgp.Standalone = true
		for _, bp := range []routerParams{func() routerParams { q := p; q.Standalone = true; return q }(), ibgp} {
			bird := render(t, "bird", bp)
			wantLines(t, "BIRD config with GTSM", bird, "  ttl security on;")
			if hops > 1 {
				wantLines(t, "BIRD config with GTSM over 2 hops", bird, "  multihop 2;")
				if strings.Contains(bird, "direct;") {
					t.Errorf("BIRD config has both multihop and direct:\n%s", bird)
				}
			}
			parseWith(t, bird, "bird", "-p", "-c", writeFile(t, t.TempDir(), "bird.conf", bird))
		}
	}
	if strings.Contains(render(t, "frr", params), "ttl-security") {
		t.Error("FRR config has ttl-security without --ttl-security-hops")
	}
}

// TestDualFamilyRouterConfig: with --dual-family a session from an IPv4 node subnet
// accepts IPv6 routes too (FRR: ipv6 unicast activated on the peer group; BIRD: an ipv6
// channel on the IPv4 protocol, and on the IPv6 protocol an ipv4 channel with extended
// next hop), and both routers accept what we print.
func TestDualFamilyRouterConfig(t *testing.T) {
	p := params
	p.NodeCIDRs = []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24")}
	p.DualFamily = true
	frr := render(t, "frr", p)
	wantLines(t, "dual-family FRR config", frr,
		" bgp listen range 198.18.0.0/24 peer-group BGPLB\n",
		" address-family ipv6 unicast\n  neighbor BGPLB activate\n  neighbor BGPLB route-map BGPLB-IN in\n")
	if strings.Contains(frr, "listen range 2001:") {
		t.Errorf("dual-family FRR config listens on IPv6 without an IPv6 node subnet:\n%s", frr)
	}
	parseWith(t, frr, "vtysh", "-C", "-f", writeFile(t, t.TempDir(), "frr.conf", frr))

	single := render(t, "bird", params)
	_, v4proto, _ := strings.Cut(single, "protocol bgp bgplb_nodes_ipv4_0 {")
	v4proto, _, _ = strings.Cut(v4proto, "\n}\n")
	if strings.Contains(v4proto, "ipv6 {") {
		t.Errorf("BIRD config without --dual-family has an ipv6 channel on the IPv4 protocol:\n%s", single)
	}
	both := params
	both.DualFamily = true
	bird := render(t, "bird", both)
	wantLines(t, "dual-family BIRD config", bird,
		"  ipv4 {\n    import filter bgplb_import_ipv4;\n    export where proto = \"bgplb_originate_ipv4\";   # none unless a conformance run defines it\n  };\n  ipv6 {\n    import filter bgplb_import_ipv6;\n    export where proto = \"bgplb_originate_ipv6\";   # none unless a conformance run defines it\n  };\n}\n",
		"neighbor range 2001:db8:f::/64 as 64513;",
		"  ipv4 {\n    import filter bgplb_import_ipv4;\n    export where proto = \"bgplb_originate_ipv4\";   # none unless a conformance run defines it\n    extended next hop on;\n  };\n")
	if n := strings.Count(bird, "  ipv6 {\n    import filter bgplb_import_ipv6;"); n != 2 {
		t.Errorf("dual-family BIRD config has %d ipv6 channels, want one per protocol (2):\n%s", n, bird)
	}
	debian, err := os.ReadFile("testdata/debian-bird.conf")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	parseWith(t, bird, "bird", "-p", "-c", writeFile(t, dir, "bird.conf",
		string(debian)+"\ninclude \""+writeFile(t, dir, "bgplb.conf", bird)+"\";\n"))
	both.Standalone = true
	alone := render(t, "bird", both)
	parseWith(t, alone, "bird", "-p", "-c", writeFile(t, dir, "standalone.conf", alone))
}
