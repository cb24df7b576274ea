package main

import (
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var params = routerParams{
	RouterASN: 64512, NodeASN: 64513,
	NodeCIDRs: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24"), netip.MustParsePrefix("2001:db8:f::/64")},
	Pools:     []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8:ffff::/112")},
	Nodes:     []netip.Addr{netip.MustParseAddr("198.18.0.11")},
}

func render(t *testing.T, flavour string, p routerParams) string {
	t.Helper()
	var b bytes.Buffer
	if err := writeRouterConfig(&b, flavour, p); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestFRRConfig(t *testing.T) {
	out := render(t, "frr", params)
	for _, want := range []string{
		"router bgp 64512",
		"bgp listen range 198.18.0.0/24 peer-group BGPLB",
		"bgp listen range 2001:db8:f::/64 peer-group BGPLB",
		"neighbor BGPLB remote-as 64513",
		"ip prefix-list BGPLB-VIPS-V4 seq 5 permit 203.0.113.0/24 ge 32 le 32",
		"ipv6 prefix-list BGPLB-VIPS-V6 seq 5 permit 2001:db8:ffff::/112 ge 128 le 128",
		"route-map BGPLB-IN deny 100",
		"neighbor BGPLB route-map BGPLB-IN in",
		"maximum-paths 64",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("FRR config lacks %q:\n%s", want, out)
		}
	}
	ibgp := params
	ibgp.NodeASN = 64512
	if out := render(t, "frr", ibgp); !strings.Contains(out, "maximum-paths ibgp 64") {
		t.Errorf("iBGP config lacks maximum-paths ibgp:\n%s", out)
	}
	// FRR's own parser, when FRR is installed (it is on the lab machines).
	vtysh, err := exec.LookPath("vtysh")
	if err != nil {
		t.Log("vtysh not installed: syntax not checked by FRR")
		return
	}
	path := filepath.Join(t.TempDir(), "frr.conf")
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(vtysh, "-C", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("vtysh -C rejects the config: %v\n%s\n%s", err, b, out)
	}
}

func TestBIRDAndOPNsenseConfig(t *testing.T) {
	bird := render(t, "bird", params)
	for _, want := range []string{
		"neighbor range 198.18.0.0/24 as 64513;",
		"if net ~ [ 203.0.113.0/24{32,32} ] then accept;",
		"if net ~ [ 2001:db8:ffff::/112{128,128} ] then accept;",
		"merge paths on;",
		"export none;",
	} {
		if !strings.Contains(bird, want) {
			t.Errorf("BIRD config lacks %q:\n%s", want, bird)
		}
	}
	opn := render(t, "opnsense", params)
	for _, want := range []string{"BGP AS Number 64512", "198.18.0.11", "203.0.113.0/24  ge 32 le 32", "bgp listen range"} {
		if !strings.Contains(opn, want) {
			t.Errorf("OPNsense instructions lack %q:\n%s", want, opn)
		}
	}
	var b bytes.Buffer
	if err := writeRouterConfig(&b, "cisco", params); err == nil {
		t.Error("unknown router flavour accepted")
	}
}
