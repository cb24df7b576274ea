package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"

	api "github.com/osrg/gobgp/v3/api"
)

// Per-peer export (Path.PeerAttributes).
//
// GoBGP keeps one path per prefix in its global RIB and applies per-neighbour policies
// only to route-server clients; for normal peers it runs the global export policy once
// per neighbour, and a neighbor-set condition then matches the neighbour the path is
// being sent to. So a path with PeerAttributes goes into the RIB with the attributes its
// peers share ("base") plus a tag, a large community naming its export group, and the
// group's policy in the global export assignment decides per neighbour:
//
//	statement i:  neighbour in variant i's peers AND tag  -> rewrite the attributes that
//	              differ between peers, strip the tag, accept
//	last:         tag                                     -> reject
//
// Untagged paths (PeerAttributes nil, pod CIDRs) match no statement and keep the default
// accept. Paths whose per-peer rules are equal share one group, so 10k VIPs behind a few
// advertisements make a few policies, not 10k; per-VIP values that are the same for all
// of a path's peers (typically the link bandwidth, which follows the endpoint count) stay
// on the path and out of the group key, so weight changes never touch a policy.
//
// Moving a prefix to another group is one AddPath that replaces the path: GoBGP
// evaluates the new path under the current policy and, where that rejects it, the old
// path (still carrying its old tag, whose group is still installed); a peer that accepted
// the old path gets a withdrawal, one that accepts the new path an UPDATE, one that
// accepts neither nothing. No session is reset and no soft reset is needed (GoBGP v3's
// soft reset out would not withdraw newly filtered paths anyway). The old group is
// removed once no path uses it. Withdrawals bypass policies in GoBGP, so Withdraw reaches
// every peer that had the prefix.

const (
	// exportTagAdmin and exportTagMarker are the first two parts of the tag large
	// community exportTagAdmin:exportTagMarker:<group id>. AS 4294967295 is reserved
	// (RFC 7300), so no operator's community should collide; the tag never leaves the
	// speaker (every accepting statement strips it, every other path is rejected).
	exportTagAdmin  = 4294967295
	exportTagMarker = 0x62676c62 // "bglb"
	// defaultLocalPref is what GoBGP sends to iBGP peers for a path without LOCAL_PREF.
	defaultLocalPref = 100
)

func isExportTag(l LargeCommunity) bool {
	return l.GlobalAdmin == exportTagAdmin && l.LocalData1 == exportTagMarker
}

// exportGroup is one installed export policy shared by the paths with equal rules.
type exportGroup struct {
	id       uint32
	rules    []exportVariant
	refs     int // paths in g.announced using the group
	policy   string
	tagSet   string
	neighbor []string // neighbor-set name of each variant
}

func (e *exportGroup) tag() LargeCommunity {
	return LargeCommunity{exportTagAdmin, exportTagMarker, e.id}
}

// exportVariant is the statement for the peers that receive the same attributes.
type exportVariant struct {
	peers []netip.Addr // sorted, never empty
	// communities, when non-nil, replaces the path's communities (empty: removes them).
	communities *[]uint32
	// largeCommunities, when non-nil, replaces the path's large communities (and so the
	// tag); nil keeps the path's own and removes only the tag.
	largeCommunities *[]LargeCommunity
	// localPref, when non-zero, sets LOCAL_PREF.
	localPref uint32
	// linkBandwidth, when non-nil, adds the link-bandwidth community (the path has none).
	linkBandwidth *float32
}

// exportPlan splits a path with PeerAttributes into the base path that goes into the RIB
// (without the tag) and the rules of its export group, keyed canonically.
func exportPlan(p Path) (base Path, rules []exportVariant, key string) {
	type peerGroup struct {
		attrs Attributes
		peers []netip.Addr
	}
	addrs := make([]netip.Addr, 0, len(p.PeerAttributes))
	for a := range p.PeerAttributes {
		addrs = append(addrs, a)
	}
	slices.SortFunc(addrs, func(a, b netip.Addr) int { return a.Compare(b) })
	var groups []*peerGroup // in the order of their lowest address
	for _, a := range addrs {
		at := normalizeAttributes(p.PeerAttributes[a])
		i := slices.IndexFunc(groups, func(g *peerGroup) bool { return reflect.DeepEqual(g.attrs, at) })
		if i < 0 {
			groups = append(groups, &peerGroup{attrs: at})
			i = len(groups) - 1
		}
		groups[i].peers = append(groups[i].peers, a)
	}
	uniform := func(field func(Attributes) any) bool {
		for _, g := range groups[min(1, len(groups)):] {
			if !reflect.DeepEqual(field(g.attrs), field(groups[0].attrs)) {
				return false
			}
		}
		return true
	}
	commsU := uniform(func(a Attributes) any { return a.Communities })
	lcsU := uniform(func(a Attributes) any { return a.LargeCommunities })
	lpU := uniform(func(a Attributes) any { return a.LocalPref })
	lbU := uniform(func(a Attributes) any { return a.LinkBandwidth })

	base = Path{Prefix: p.Prefix}
	if len(groups) > 0 {
		first := groups[0].attrs
		if commsU {
			base.Communities = first.Communities
		}
		if lcsU {
			base.LargeCommunities = first.LargeCommunities
		}
		if lbU {
			base.LinkBandwidth = first.LinkBandwidth
		}
		switch {
		case lpU:
			base.LocalPref = first.LocalPref
		case slices.ContainsFunc(groups, func(g *peerGroup) bool { return g.attrs.LocalPref != nil && *g.attrs.LocalPref == 0 }):
			// A policy cannot set LOCAL_PREF 0 (GoBGP reads 0 as "no action"), so 0 goes on
			// the path and the other variants set theirs.
			zero := uint32(0)
			base.LocalPref = &zero
		}
	}
	effectiveLP := func(lp *uint32) uint32 {
		if lp == nil {
			return defaultLocalPref
		}
		return *lp
	}
	var b strings.Builder
	fmt.Fprintf(&b, "lcs-kept=%t", lcsU)
	for _, g := range groups {
		v := exportVariant{peers: g.peers}
		if !commsU {
			c := slices.Clone(g.attrs.Communities)
			v.communities = &c
		}
		if !lcsU {
			l := slices.Clone(g.attrs.LargeCommunities)
			v.largeCommunities = &l
		}
		if !lpU && effectiveLP(g.attrs.LocalPref) != effectiveLP(base.LocalPref) {
			v.localPref = effectiveLP(g.attrs.LocalPref)
		}
		if !lbU && g.attrs.LinkBandwidth != nil {
			bw := *g.attrs.LinkBandwidth
			v.linkBandwidth = &bw
		}
		rules = append(rules, v)
		fmt.Fprintf(&b, "|%v", v.peers)
		if v.communities != nil {
			fmt.Fprintf(&b, " c=%v", *v.communities)
		}
		if v.largeCommunities != nil {
			fmt.Fprintf(&b, " l=%v", *v.largeCommunities)
		}
		if v.localPref != 0 {
			fmt.Fprintf(&b, " p=%d", v.localPref)
		}
		if v.linkBandwidth != nil {
			fmt.Fprintf(&b, " b=%g", *v.linkBandwidth)
		}
	}
	return base, rules, b.String()
}

// normalizeAttributes makes equal attribute sets deeply equal: sorted, deduplicated, empty
// lists nil.
func normalizeAttributes(a Attributes) Attributes {
	a.Communities = slices.Compact(slices.Sorted(slices.Values(a.Communities)))
	a.LargeCommunities = slices.Clone(a.LargeCommunities)
	slices.SortFunc(a.LargeCommunities, func(x, y LargeCommunity) int {
		if x.GlobalAdmin != y.GlobalAdmin {
			return cmpU32(x.GlobalAdmin, y.GlobalAdmin)
		}
		if x.LocalData1 != y.LocalData1 {
			return cmpU32(x.LocalData1, y.LocalData1)
		}
		return cmpU32(x.LocalData2, y.LocalData2)
	})
	a.LargeCommunities = slices.Compact(a.LargeCommunities)
	if len(a.Communities) == 0 {
		a.Communities = nil
	}
	if len(a.LargeCommunities) == 0 {
		a.LargeCommunities = nil
	}
	return a
}

func cmpU32(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// acquireGroup returns the installed export group for rules (key), installing it when
// new. The caller must call releaseGroup when the path is gone or used no group after
// all. Caller holds g.mu.
func (g *GoBGPSpeaker) acquireGroup(ctx context.Context, key string, rules []exportVariant) (*exportGroup, error) {
	if grp, ok := g.groups[key]; ok {
		grp.refs++
		return grp, nil
	}
	g.nextGroup++
	id := g.nextGroup
	grp := &exportGroup{id: id, rules: rules, refs: 1,
		policy: fmt.Sprintf("bgplb-export-%d", id), tagSet: fmt.Sprintf("bgplb-export-%d-tag", id)}
	if err := g.installGroup(ctx, grp); err != nil {
		g.removeGroup(ctx, grp) // best effort: take back what was installed
		return nil, fmt.Errorf("install export policy %s: %w", grp.policy, err)
	}
	g.groups[key] = grp
	g.logger.V(2).Info("Installed per-peer export policy", "policy", grp.policy, "rules", key)
	return grp, nil
}

// releaseGroup drops one path's reference and removes the group when it was the last.
// Caller holds g.mu.
func (g *GoBGPSpeaker) releaseGroup(ctx context.Context, key string) {
	grp, ok := g.groups[key]
	if !ok {
		return
	}
	grp.refs--
	if grp.refs > 0 {
		return
	}
	delete(g.groups, key)
	if err := g.removeGroup(ctx, grp); err != nil {
		// Harmless leftovers: no path carries the tag any more, so the policy matches
		// nothing; it is only memory.
		g.logger.Info("Removing an unused export policy failed", "policy", grp.policy, "err", err)
		return
	}
	g.logger.V(2).Info("Removed per-peer export policy", "policy", grp.policy)
}

func (g *GoBGPSpeaker) installGroup(ctx context.Context, grp *exportGroup) error {
	tag := grp.tag()
	if err := g.s.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: &api.DefinedSet{
		DefinedType: api.DefinedType_LARGE_COMMUNITY, Name: grp.tagSet, List: []string{tag.String()},
	}}); err != nil {
		return fmt.Errorf("add tag set: %w", err)
	}
	tagCond := &api.MatchSet{Type: api.MatchSet_ANY, Name: grp.tagSet}
	policy := &api.Policy{Name: grp.policy}
	for i, v := range grp.rules {
		name := fmt.Sprintf("%s-%d", grp.policy, i)
		list := make([]string, 0, len(v.peers))
		for _, a := range v.peers {
			list = append(list, netip.PrefixFrom(a, a.BitLen()).String()) // the API wants prefixes
		}
		if err := g.s.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: &api.DefinedSet{
			DefinedType: api.DefinedType_NEIGHBOR, Name: name, List: list,
		}}); err != nil {
			return fmt.Errorf("add neighbor set: %w", err)
		}
		grp.neighbor = append(grp.neighbor, name)
		actions := &api.Actions{RouteAction: api.RouteAction_ACCEPT}
		if v.communities != nil {
			cs := make([]string, 0, len(*v.communities))
			for _, c := range *v.communities {
				cs = append(cs, fmt.Sprintf("%d:%d", c>>16, c&0xffff))
			}
			actions.Community = &api.CommunityAction{Type: api.CommunityAction_REPLACE, Communities: cs}
		}
		if v.largeCommunities != nil {
			ls := make([]string, 0, len(*v.largeCommunities))
			for _, l := range *v.largeCommunities {
				ls = append(ls, l.String())
			}
			actions.LargeCommunity = &api.CommunityAction{Type: api.CommunityAction_REPLACE, Communities: ls}
		} else {
			actions.LargeCommunity = &api.CommunityAction{Type: api.CommunityAction_REMOVE, Communities: []string{tag.String()}}
		}
		if v.localPref != 0 {
			actions.LocalPref = &api.LocalPrefAction{Value: v.localPref}
		}
		if v.linkBandwidth != nil {
			actions.ExtCommunity = &api.CommunityAction{Type: api.CommunityAction_ADD,
				Communities: []string{"lb:" + strconv.Itoa(int(g.linkBandwidthAS())) + ":" + strconv.FormatUint(uint64(*v.linkBandwidth), 10)}}
		}
		policy.Statements = append(policy.Statements, &api.Statement{
			Name:       name,
			Conditions: &api.Conditions{NeighborSet: &api.MatchSet{Type: api.MatchSet_ANY, Name: name}, LargeCommunitySet: tagCond},
			Actions:    actions,
		})
	}
	policy.Statements = append(policy.Statements, &api.Statement{
		Name:       grp.policy + "-reject",
		Conditions: &api.Conditions{LargeCommunitySet: tagCond},
		Actions:    &api.Actions{RouteAction: api.RouteAction_REJECT},
	})
	if err := g.s.AddPolicy(ctx, &api.AddPolicyRequest{Policy: policy}); err != nil {
		return fmt.Errorf("add policy: %w", err)
	}
	// Groups are independent (each matches only its own tag), so appending keeps the
	// assignment correct whatever the order.
	if err := g.s.AddPolicyAssignment(ctx, &api.AddPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name:          "global",
		Direction:     api.PolicyDirection_EXPORT,
		Policies:      []*api.Policy{{Name: grp.policy}},
		DefaultAction: api.RouteAction_ACCEPT,
	}}); err != nil {
		return fmt.Errorf("assign policy: %w", err)
	}
	return nil
}

// removeGroup removes what installGroup installed, also after a partial install: every
// step is tried and "not found" is not an error.
func (g *GoBGPSpeaker) removeGroup(ctx context.Context, grp *exportGroup) error {
	var errs []error
	notFound := func(err error) bool { return err != nil && strings.Contains(err.Error(), "not found") }
	if err := g.s.DeletePolicyAssignment(ctx, &api.DeletePolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name: "global", Direction: api.PolicyDirection_EXPORT, Policies: []*api.Policy{{Name: grp.policy}},
	}}); err != nil && !notFound(err) {
		errs = append(errs, fmt.Errorf("unassign policy: %w", err))
	}
	if err := g.s.DeletePolicy(ctx, &api.DeletePolicyRequest{Policy: &api.Policy{Name: grp.policy}, All: true}); err != nil && !notFound(err) {
		errs = append(errs, fmt.Errorf("delete policy: %w", err))
	}
	for _, name := range grp.neighbor {
		if err := g.s.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{All: true,
			DefinedSet: &api.DefinedSet{DefinedType: api.DefinedType_NEIGHBOR, Name: name}}); err != nil && !notFound(err) {
			errs = append(errs, fmt.Errorf("delete neighbor set %s: %w", name, err))
		}
	}
	if err := g.s.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{All: true,
		DefinedSet: &api.DefinedSet{DefinedType: api.DefinedType_LARGE_COMMUNITY, Name: grp.tagSet}}); err != nil && !notFound(err) {
		errs = append(errs, fmt.Errorf("delete tag set: %w", err))
	}
	return errors.Join(errs...)
}

// linkBandwidthAS is the AS in the link-bandwidth community: ours, or AS_TRANS when it
// does not fit in two octets.
func (g *GoBGPSpeaker) linkBandwidthAS() uint16 {
	if g.global.ASN <= 0xffff {
		return uint16(g.global.ASN)
	}
	return asTrans
}
