// Next hops of the other address family (PeerConfig.OtherFamilyNextHop).
package bgp

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	api "github.com/osrg/gobgp/v3/api"
)

// GoBGP sets the next hop of a locally originated path to the session's local address.
// On a session carrying both families that address is of one family only: an IPv6 path
// sent on an IPv4 session would get the IPv4-mapped address ::ffff:a.b.c.d, which no
// router can forward to. The global export policy therefore starts with one policy,
// nextHopPolicy, with one statement per peer that has an OtherFamilyNextHop:
//
//	neighbour is the peer AND family is the other one -> set next hop, no route action
//
// A statement without a route action lets GoBGP go on with the next statements and
// policies (the per-peer export groups, export.go) and finally the default accept, so it
// only rewrites the next hop. GoBGP runs the export policy after its own next-hop
// handling, so the policy's next hop is the one sent.

// nextHopPolicy names the policy that sets the other family's next hop per peer.
const nextHopPolicy = "bgplb-nexthop"

// nextHopRule is the next hop set on one peer's routes of one family.
type nextHopRule struct {
	family  Family
	nextHop netip.Addr
}

// syncNextHopPolicyLocked makes nextHopPolicy match the peers in want; it does nothing
// when the rules did not change. g.mu is held.
func (g *GoBGPSpeaker) syncNextHopPolicyLocked(ctx context.Context, want map[netip.Addr]PeerConfig) error {
	rules := map[netip.Addr]nextHopRule{}
	for addr, pc := range want {
		if f, nh, ok := pc.crossNextHop(); ok {
			rules[addr] = nextHopRule{family: f, nextHop: nh}
		}
	}
	if maps.Equal(rules, g.nextHops) {
		return nil
	}
	if len(g.nextHops) > 0 {
		if err := g.removeNextHopPolicy(ctx); err != nil {
			return err
		}
		g.nextHops = nil
	}
	if len(rules) == 0 {
		return nil
	}
	if err := g.installNextHopPolicy(ctx, rules); err != nil {
		if rerr := g.removeNextHopPolicy(ctx); rerr != nil { // best effort: take back what was installed
			g.logger.Info("Removing a partly installed next-hop policy failed", "err", rerr)
		}
		return err
	}
	g.nextHops = rules
	g.logger.V(2).Info("Installed the next-hop policy of the other address family", "peers", len(rules))
	return nil
}

func nextHopSetName(i int) string { return fmt.Sprintf("%s-%d", nextHopPolicy, i) }

func (g *GoBGPSpeaker) installNextHopPolicy(ctx context.Context, rules map[netip.Addr]nextHopRule) error {
	addrs := slices.SortedFunc(maps.Keys(rules), netip.Addr.Compare)
	policy := &api.Policy{Name: nextHopPolicy}
	for i, a := range addrs {
		r := rules[a]
		name := nextHopSetName(i)
		if err := g.s.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: &api.DefinedSet{
			DefinedType: api.DefinedType_NEIGHBOR, Name: name, List: []string{netip.PrefixFrom(a, a.BitLen()).String()},
		}}); err != nil {
			return fmt.Errorf("add neighbor set %s: %w", name, err)
		}
		policy.Statements = append(policy.Statements, &api.Statement{
			Name: name,
			Conditions: &api.Conditions{
				NeighborSet: &api.MatchSet{Type: api.MatchSet_ANY, Name: name},
				AfiSafiIn:   []*api.Family{apiFamily(r.family)},
			},
			Actions: &api.Actions{RouteAction: api.RouteAction_NONE, Nexthop: &api.NexthopAction{Address: r.nextHop.String()}},
		})
	}
	if err := g.s.AddPolicy(ctx, &api.AddPolicyRequest{Policy: policy}); err != nil {
		return fmt.Errorf("add policy %s: %w", nextHopPolicy, err)
	}
	// First in the assignment: the export groups accept or reject, which ends the walk.
	policies := []*api.Policy{{Name: nextHopPolicy}}
	for _, grp := range slices.SortedFunc(maps.Values(g.groups), func(a, b *exportGroup) int { return int(a.id) - int(b.id) }) {
		policies = append(policies, &api.Policy{Name: grp.policy})
	}
	if err := g.s.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name:          "global",
		Direction:     api.PolicyDirection_EXPORT,
		Policies:      policies,
		DefaultAction: api.RouteAction_ACCEPT,
	}}); err != nil {
		return fmt.Errorf("assign policy %s: %w", nextHopPolicy, err)
	}
	return nil
}

// removeNextHopPolicy removes what installNextHopPolicy installed, also after a partial
// install; "not found" is not an error.
func (g *GoBGPSpeaker) removeNextHopPolicy(ctx context.Context) error {
	var errs []error
	notFound := func(err error) bool { return err != nil && strings.Contains(err.Error(), "not found") }
	if err := g.s.DeletePolicyAssignment(ctx, &api.DeletePolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name: "global", Direction: api.PolicyDirection_EXPORT, Policies: []*api.Policy{{Name: nextHopPolicy}},
	}}); err != nil && !notFound(err) {
		errs = append(errs, fmt.Errorf("unassign policy %s: %w", nextHopPolicy, err))
	}
	if err := g.s.DeletePolicy(ctx, &api.DeletePolicyRequest{Policy: &api.Policy{Name: nextHopPolicy}, All: true}); err != nil && !notFound(err) {
		errs = append(errs, fmt.Errorf("delete policy %s: %w", nextHopPolicy, err))
	}
	var sets []string
	if err := g.s.ListDefinedSet(ctx, &api.ListDefinedSetRequest{DefinedType: api.DefinedType_NEIGHBOR}, func(d *api.DefinedSet) {
		if strings.HasPrefix(d.Name, nextHopPolicy+"-") {
			sets = append(sets, d.Name)
		}
	}); err != nil {
		errs = append(errs, fmt.Errorf("list neighbor sets: %w", err))
	}
	for _, name := range sets {
		if err := g.s.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{All: true,
			DefinedSet: &api.DefinedSet{DefinedType: api.DefinedType_NEIGHBOR, Name: name}}); err != nil && !notFound(err) {
			errs = append(errs, fmt.Errorf("delete neighbor set %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}
