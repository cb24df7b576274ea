package tests

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/bgplb/bgplb/conformance/router"
	"github.com/bgplb/bgplb/conformance/suite"
)

// C12, G8: prefixes the router sends the nodes — one unrelated, one inside the VIP range —
// are advertised to every node but never reach a node's routing table, and they change
// neither the VIP's advertisement nor a session.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "BGPNoInboundRoutes",
		ID:        "C12 G8",
		Description: "the router advertises 198.18.201.0/24 and a prefix inside the VIP range to every node: " +
			"none installs them, and the VIP's next hops and the sessions stay",
		Needs:    []suite.Adapter{suite.AdapterNodeRoutes},
		Profile:  "LB-BGP",
		Features: []suite.Feature{suite.FeatureNoInboundRoutes},
		Test:     testNoInboundRoutes,
	})
}

func testNoInboundRoutes(t *testing.T, s *suite.Suite) {
	frr, ok := s.Router.(router.FRR)
	if !ok {
		t.Skip("this test configures the router and knows only FRR")
	}
	if s.NodeRoutes == nil {
		t.Skip("this cluster provides no access to the nodes' routing tables (Suite.NodeRoutes)")
	}
	ctx := context.Background()
	ns := s.Namespace(t, "conf-no-inbound")
	vip := backedService(t, s, ns, "web", "web")
	before := s.RequireSessions(t)

	// 240-247 of the VIP range: in no pool of the suite (see vipAt), so no Service's own
	// /32 is shadowed at the router.
	injected := []netip.Prefix{netip.MustParsePrefix("198.18.201.0/24"), netip.PrefixFrom(vipAt(s, 240), 29)}
	if !injected[1].Addr().Is4() || injected[1].Overlaps(suite.HostPrefix(vip)) {
		t.Fatalf("%s is no IPv4 prefix clear of the VIP %s", injected[1], vip)
	}
	t.Logf("the router sends %v to every node", injected)

	var inject, remove strings.Builder
	inject.WriteString("configure terminal\n")
	for i, p := range injected {
		fmt.Fprintf(&inject, "ip prefix-list CONF-INJECT seq %d permit %s\n", 5*(i+1), p)
	}
	inject.WriteString("route-map NODES-OUT permit 6\n match ip address prefix-list CONF-INJECT\nexit\n" +
		"router bgp\naddress-family ipv4 unicast\n")
	remove.WriteString("configure terminal\nrouter bgp\naddress-family ipv4 unicast\n")
	for _, p := range injected {
		fmt.Fprintf(&inject, "network %s\n", p)
		fmt.Fprintf(&remove, "no network %s\n", p)
	}
	inject.WriteString("end")
	remove.WriteString("exit\nexit\nno route-map NODES-OUT permit 6\nno ip prefix-list CONF-INJECT\nend")
	t.Cleanup(func() {
		if _, err := frr.Run(context.Background(), remove.String()); err != nil {
			t.Errorf("remove the injected routes from the router: %v", err)
		}
	})
	if _, err := frr.Run(ctx, inject.String()); err != nil {
		t.Fatalf("inject routes at the router: %v", err)
	}

	// The router's own account of what it sent (bgplbd's BGPNodeState does not count
	// received prefixes yet).
	suite.Eventually(t, s.Timeouts.Converge, "the router advertises the injected prefixes to every node", func() error {
		for _, n := range s.Nodes {
			cmd := fmt.Sprintf("show bgp ipv4 unicast neighbors %s advertised-routes json", n.Addresses[0])
			out, err := frr.Run(ctx, cmd)
			if err != nil {
				return fmt.Errorf("%s: %w", cmd, err)
			}
			for _, p := range injected {
				if !strings.Contains(string(out), fmt.Sprintf("%q", p.String())) {
					return fmt.Errorf("the router does not advertise %s to %s: %.300s", p, n.Name, out)
				}
			}
		}
		return nil
	})
	suite.Consistently(t, s.Timeouts.Consistently/3, "no node installs the injected prefixes; the VIP stays", func() error {
		for _, n := range s.Nodes {
			for _, p := range injected {
				rts, err := s.NodeRoutes.Routes(ctx, n.Name, p)
				if err != nil {
					return err
				}
				if len(rts) > 0 {
					return fmt.Errorf("%s installed %s: %v", n.Name, p, rts)
				}
			}
		}
		nh, err := s.RIBNextHops(vip)
		if err != nil {
			return err
		}
		if want := s.AllNodeAddrs(); fmt.Sprint(nh) != fmt.Sprint(want) {
			return fmt.Errorf("next hops of %s changed to %v, want %v", vip, nh, want)
		}
		return nil
	})
	if err := s.SessionsUnchanged(ctx, before); err != nil {
		t.Errorf("injecting routes changed a session: %v", err)
	}
}
