package router

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func testdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFRROriginateConfig checks the vtysh input Originate sends, which FRR 8.4.4
// accepted in a scratch router (frr-8.4.4-running-config-originate.txt is its running
// config afterwards), and that the input StopOriginating derives from that running
// config removes exactly what Originate added.
func TestFRROriginateConfig(t *testing.T) {
	got := frrOriginateConfig(prefixes("203.0.113.240/29", "198.18.201.0/24", "198.18.201.0/24", "2001:db8:ffff::f0/124"), []string{"NODES-OUT"})
	want := `configure terminal
ip prefix-list BGPLB-CONFORMANCE-ORIGINATE seq 5 permit 198.18.201.0/24
ip prefix-list BGPLB-CONFORMANCE-ORIGINATE seq 10 permit 203.0.113.240/29
ipv6 prefix-list BGPLB-CONFORMANCE-ORIGINATE6 seq 5 permit 2001:db8:ffff::f0/124
route-map NODES-OUT permit 1
 match ip address prefix-list BGPLB-CONFORMANCE-ORIGINATE
exit
route-map NODES-OUT permit 2
 match ipv6 address prefix-list BGPLB-CONFORMANCE-ORIGINATE6
exit
router bgp
address-family ipv4 unicast
network 198.18.201.0/24
network 203.0.113.240/29
exit-address-family
address-family ipv6 unicast
network 2001:db8:ffff::f0/124
exit-address-family
end`
	if got != want {
		t.Errorf("originate config:\n%s\nwant:\n%s", got, want)
	}

	stop := frrStopConfig(testdata(t, "frr-8.4.4-running-config-originate.txt"))
	wantStop := `configure terminal
router bgp
address-family ipv4 unicast
no network 198.18.201.0/24
no network 203.0.113.240/29
exit-address-family
exit
no route-map NODES-OUT permit 1
no ip prefix-list BGPLB-CONFORMANCE-ORIGINATE
end`
	if stop != wantStop {
		t.Errorf("stop config:\n%s\nwant:\n%s", stop, wantStop)
	}
	// The lab's base config (the deny entry of NODES-OUT, no prefix list): nothing to do.
	base := strings.NewReplacer(
		"  network 198.18.201.0/24\n", "", "  network 203.0.113.240/29\n", "",
		"ip prefix-list BGPLB-CONFORMANCE-ORIGINATE seq 5 permit 198.18.201.0/24\n", "",
		"ip prefix-list BGPLB-CONFORMANCE-ORIGINATE seq 10 permit 203.0.113.240/29\n", "",
		"route-map NODES-OUT permit 1\n match ip address prefix-list BGPLB-CONFORMANCE-ORIGINATE\nexit\n", "",
	).Replace(string(testdata(t, "frr-8.4.4-running-config-originate.txt")))
	if strings.Contains(base, "CONFORMANCE") {
		t.Fatalf("test setup: %s", base)
	}
	if s := frrStopConfig([]byte(base)); s != "" {
		t.Errorf("stop config of a router without originated prefixes: %q, want none", s)
	}
}

// TestFRROriginate drives Originate and StopOriginating through a fake vtysh that
// answers with the recorded outputs: Originate first removes what a previous run
// left, then adds its prefixes through the neighbours' outgoing route-map.
func TestFRROriginate(t *testing.T) {
	var configured []string
	running := testdata(t, "frr-8.4.4-running-config-originate.txt")
	f := FRR{Run: func(_ context.Context, cmd string) ([]byte, error) {
		switch {
		case cmd == "show running-config":
			return running, nil
		case cmd == "show bgp neighbors json":
			return testdata(t, "frr-8.4.4-show-bgp-neighbors.json"), nil
		case strings.HasPrefix(cmd, "configure terminal\n"):
			configured = append(configured, cmd)
			return nil, nil
		}
		return nil, fmt.Errorf("unexpected vtysh command %q", cmd)
	}}
	if err := f.CanOriginate(); err != nil {
		t.Fatal(err)
	}
	if err := f.Originate(context.Background(), prefixes("198.18.200.1/32")); err != nil {
		t.Fatal(err)
	}
	if len(configured) != 2 || !strings.Contains(configured[0], "no network 203.0.113.240/29") ||
		!strings.Contains(configured[1], "route-map NODES-OUT permit 1\n") || !strings.Contains(configured[1], "network 198.18.200.1/32\n") {
		t.Errorf("vtysh configuration: %q", configured)
	}

	// A router that checks networks against its RIB (FRR's default) would advertise
	// none of them: Originate says so and configures nothing.
	running = bytes.Replace(running, []byte(" no bgp network import-check\n"), nil, 1)
	configured = nil
	err := f.Originate(context.Background(), prefixes("198.18.200.1/32"))
	if !errors.Is(err, ErrCannotOriginate) || !strings.Contains(err.Error(), "no bgp network import-check") || len(configured) != 0 {
		t.Errorf("Originate under import-check: %v, configured %q; want ErrCannotOriginate and nothing configured", err, configured)
	}
}

func TestFRRAdvertised(t *testing.T) {
	got, err := parseFRRAdvertised(testdata(t, "frr-8.4.4-advertised-routes.json"))
	if err != nil {
		t.Fatal(err)
	}
	if want := prefixes("198.18.201.0/24", "203.0.113.240/29"); !slices.Equal(got, want) {
		t.Errorf("advertised %v, want %v", got, want)
	}
	if _, err := parseFRRAdvertised([]byte("% No such neighbor\n")); err == nil {
		t.Error("no error for a non-JSON answer")
	}
}

// TestBIRDOriginate writes the originate file through a fake WriteFile and a fake
// birdc answering with BIRD 2.0.12's recorded outputs of `configure`.
func TestBIRDOriginate(t *testing.T) {
	if err := (BIRD{}).CanOriginate(); !errors.Is(err, ErrCannotOriginate) || !strings.Contains(err.Error(), "--router-originate-file") {
		t.Errorf("CanOriginate without a file: %v", err)
	}
	files := map[string]string{}
	answer := "bird-2.0.12-configure.txt"
	b := BIRD{
		Run: func(_ context.Context, cmd string) ([]byte, error) {
			switch cmd {
			case "configure":
				out := testdata(t, answer)
				if strings.Contains(string(out), "error") {
					return out, fmt.Errorf("exit status 1")
				}
				return out, nil
			case "show protocols all":
				return testdata(t, "bird-2.0.12-show-protocols-all.txt"), nil
			case "show route export bgplb_ipv4_2":
				return testdata(t, "bird-2.0.12-show-route-export.txt"), nil
			}
			return nil, fmt.Errorf("unexpected birdc command %q", cmd)
		},
		OriginateConf: "/etc/bird/bgplb-originate.conf",
		WriteFile: func(_ context.Context, path string, data []byte) error {
			files[path] = string(data)
			return nil
		},
	}
	ctx := context.Background()
	if err := b.Originate(ctx, prefixes("203.0.113.240/29", "198.18.201.0/24", "2001:db8:ffff::f0/124")); err != nil {
		t.Fatal(err)
	}
	want := `# bgplb-conformance: prefixes the router originates towards the nodes; rewritten by each run
protocol static bgplb_originate_ipv4 {
  ipv4;
  route 198.18.201.0/24 blackhole;
  route 203.0.113.240/29 blackhole;
}
protocol static bgplb_originate_ipv6 {
  ipv6;
  route 2001:db8:ffff::f0/124 blackhole;
}
`
	if got := files[b.OriginateConf]; got != want {
		t.Errorf("originate file:\n%s\nwant:\n%s", got, want)
	}
	if err := b.StopOriginating(ctx); err != nil {
		t.Fatal(err)
	}
	if got := files[b.OriginateConf]; strings.Contains(got, "protocol") {
		t.Errorf("originate file after StopOriginating:\n%s", got)
	}

	answer = "bird-2.0.12-configure-error.txt"
	err := b.Originate(ctx, prefixes("198.18.201.0/24"))
	if err == nil || !strings.Contains(err.Error(), "syntax error") {
		t.Errorf("Originate with a configuration BIRD refuses: %v, want its parse error", err)
	}

	got, err := b.Advertised(ctx, netip.MustParseAddr("198.18.0.13"), false)
	if err != nil {
		t.Fatal(err)
	}
	if want := prefixes("198.18.201.0/24", "203.0.113.240/29"); !slices.Equal(got, want) {
		t.Errorf("advertised %v, want %v", got, want)
	}
	if v6, _ := b.Advertised(ctx, netip.MustParseAddr("198.18.0.13"), true); len(v6) != 0 {
		t.Errorf("advertised IPv6 %v, want none", v6)
	}
	if _, err := b.Advertised(ctx, netip.MustParseAddr("198.18.0.99"), false); err == nil {
		t.Error("no error for a neighbour BIRD has no protocol for")
	}
}

// TestBIRDOriginateConfigParses checks the originate file with BIRD's own parser
// when bird is installed: alone after Debian-like device/kernel protocols.
func TestBIRDOriginateConfigParses(t *testing.T) {
	conf := "router id 198.18.0.1;\nprotocol device {}\n" + birdOriginateConfig(prefixes("198.18.201.0/24", "2001:db8:ffff::f0/124"))
	parseWithBIRD(t, conf)
	parseWithBIRD(t, birdOriginateConfig(nil)+"router id 198.18.0.1;\nprotocol device {}\n")
}

// parseWithBIRD runs `bird -p` (parse only) on conf.
func parseWithBIRD(t *testing.T, conf string) {
	t.Helper()
	bird, err := exec.LookPath("bird")
	if err != nil {
		t.Skipf("bird is not installed (make deps): %v", err)
	}
	path := filepath.Join(t.TempDir(), "bird.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bird, "-p", "-c", path).CombinedOutput(); err != nil {
		t.Errorf("bird -p refuses\n%s\n: %v: %s", conf, err, out)
	}
}
