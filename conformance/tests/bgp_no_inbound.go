package tests

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
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
	orig := originator(t, s)
	if s.NodeRoutes == nil {
		s.Skip(t, "this cluster provides no access to the nodes' routing tables (Suite.NodeRoutes)")
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
	originate(t, s, orig, injected)

	// The router's own account of what it sent (bgplbd's BGPNodeState does not count
	// received prefixes yet).
	suite.Eventually(t, s.Timeouts.Converge, "the router advertises the injected prefixes to every node", func() error {
		for _, n := range s.Nodes {
			adv, err := orig.Advertised(ctx, n.Addresses[0], false)
			if err != nil {
				return err
			}
			for _, p := range injected {
				if !slices.Contains(adv, p) {
					return fmt.Errorf("the router does not advertise %s to %s (%s): it sends %v", p, n.Name, n.Addresses[0], adv)
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

// originator returns the router adapter's Originator, or skips t with the reason the
// router cannot originate prefixes.
func originator(t *testing.T, s *suite.Suite) router.Originator {
	t.Helper()
	o, ok := s.Router.(router.Originator)
	if !ok {
		s.Skip(t, fmt.Sprintf("the router adapter (%T) cannot make the router originate prefixes (router.Originator)", s.Router))
	}
	if err := o.CanOriginate(); err != nil {
		s.Skip(t, err.Error())
	}
	return o
}

// originate makes the router originate prefixes until t ends.
func originate(t *testing.T, s *suite.Suite, o router.Originator, prefixes []netip.Prefix) {
	t.Helper()
	t.Cleanup(func() {
		if err := o.StopOriginating(context.Background()); err != nil {
			t.Errorf("stop originating %d prefixes at the router: %v", len(prefixes), err)
		}
	})
	err := o.Originate(context.Background(), prefixes)
	if errors.Is(err, router.ErrCannotOriginate) {
		s.Skip(t, err.Error())
	}
	if err != nil {
		t.Fatalf("make the router originate %d prefixes: %v", len(prefixes), err)
	}
}
