package announce

import (
	"context"
	"net/netip"
	"slices"
	"strings"

	"k8s.io/klog/v2"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/bgp"
	"github.com/bgplb/bgplb/daemon/peers"
	"github.com/bgplb/bgplb/daemon/pools"
)

// pathForPeers returns the path of one VIP given the advertisements selecting it. When
// every advertisement selects all peers (no peerSelector), the path goes to every peer
// with the merged attributes of all of them. Otherwise each configured peer gets the VIP
// with the merged attributes of the advertisements whose peerSelector matches its labels
// (an invalid selector matches nothing), and a peer no advertisement selects does not get
// it; false when that leaves no peer.
func pathForPeers(ctx context.Context, vip netip.Addr, ads []*v1alpha1.BGPAdvertisement, weight int64, configured []peers.Peer) (bgp.Path, bool) {
	if !slices.ContainsFunc(ads, func(ad *v1alpha1.BGPAdvertisement) bool { return !pools.SelectsAll(ad.Spec.PeerSelector) }) {
		return pathFor(ctx, vip, ads, weight), true
	}
	p := bgp.Path{Prefix: netip.PrefixFrom(vip, vip.BitLen()), PeerAttributes: map[netip.Addr]bgp.Attributes{}}
	for _, peer := range configured {
		var sel []*v1alpha1.BGPAdvertisement
		for _, ad := range ads {
			if ok, err := pools.Matches(ad.Spec.PeerSelector, peer.Labels); err == nil && ok {
				sel = append(sel, ad)
			}
		}
		if len(sel) > 0 {
			p.PeerAttributes[peer.Address] = pathFor(ctx, vip, sel, weight).Attributes()
		}
	}
	return p, len(p.PeerAttributes) > 0
}

// pathFor merges the attributes of the advertisements for one VIP.
func pathFor(ctx context.Context, vip netip.Addr, ads []*v1alpha1.BGPAdvertisement, weight int64) bgp.Path {
	logger := klog.FromContext(ctx)
	p := bgp.Path{Prefix: netip.PrefixFrom(vip, vip.BitLen())}
	weighted := false
	for _, ad := range ads {
		for _, c := range ad.Spec.Communities {
			v, err := parseCommunity(string(c))
			if err != nil {
				logger.Info("ignoring unsupported community", "advertisement", ad.Name, "community", c, "err", err)
				continue
			}
			p.Communities = append(p.Communities, v)
		}
		for _, c := range ad.Spec.LargeCommunities {
			v, err := bgp.ParseLargeCommunity(string(c))
			if err != nil {
				logger.Info("ignoring invalid large community", "advertisement", ad.Name, "largeCommunity", c, "err", err)
				continue
			}
			p.LargeCommunities = append(p.LargeCommunities, v)
		}
		if lp := ad.Spec.LocalPreference; lp != nil && *lp >= 0 && *lp <= 1<<32-1 {
			v := uint32(*lp)
			if p.LocalPref == nil || v > *p.LocalPref {
				p.LocalPref = &v
			}
		}
		weighted = weighted || ad.Spec.WeightedECMP
	}
	if weighted {
		bw := float32(weight * BytesPerWeight)
		p.LinkBandwidth = &bw
	}
	normalizePath(&p)
	return p
}

// wellKnownCommunities are the RFC 1997/7999/8326/... names the CRD accepts beyond
// bgp.ParseCommunity's set (name -> value).
var wellKnownCommunities = map[string]uint32{
	"graceful-shutdown": 0xFFFF0000, // RFC 8326
	"accept-own":        0xFFFF0001, // RFC 7611
	"llgr-stale":        0xFFFF0006, // RFC 9494
	"no-llgr":           0xFFFF0007, // RFC 9494
	"blackhole":         0xFFFF029A, // RFC 7999
	"local-as":          0xFFFFFF03, // alias of no-export-subconfed
}

// parseCommunity parses what BGPAdvertisement.communities allows.
func parseCommunity(s string) (uint32, error) {
	if v, ok := wellKnownCommunities[strings.ToLower(s)]; ok {
		return v, nil
	}
	return bgp.ParseCommunity(s)
}

func normalizePath(p *bgp.Path) {
	slices.Sort(p.Communities)
	p.Communities = slices.Compact(p.Communities)
	slices.SortFunc(p.LargeCommunities, func(a, b bgp.LargeCommunity) int { return strings.Compare(a.String(), b.String()) })
	p.LargeCommunities = slices.Compact(p.LargeCommunities)
	if len(p.Communities) == 0 {
		p.Communities = nil
	}
	if len(p.LargeCommunities) == 0 {
		p.LargeCommunities = nil
	}
}

// mergePaths merges the wanted paths of the Services sharing one prefix. When some are
// limited to certain peers, so is the merge: each peer gets the merge of the paths it
// receives (a path for every peer counts for each of peers).
func mergePaths(prefix netip.Prefix, wants servicePaths, configured []peers.Peer) bgp.Path {
	restricted, open := false, false
	for _, w := range wants {
		restricted = restricted || w.path.PeerAttributes != nil
		open = open || w.path.PeerAttributes == nil
	}
	if !restricted {
		return mergeAttributes(prefix, wants, func(p *bgp.Path) (bgp.Attributes, bool) { return p.Attributes(), true })
	}
	addrs := map[netip.Addr]bool{}
	for _, w := range wants {
		for a := range w.path.PeerAttributes {
			addrs[a] = true
		}
	}
	if open {
		for _, p := range configured {
			addrs[p.Address] = true
		}
	}
	out := bgp.Path{Prefix: prefix, PeerAttributes: make(map[netip.Addr]bgp.Attributes, len(addrs))}
	for addr := range addrs {
		out.PeerAttributes[addr] = mergeAttributes(prefix, wants, func(p *bgp.Path) (bgp.Attributes, bool) { return p.For(addr) }).Attributes()
	}
	return out
}

// mergeAttributes merges the attributes of the Services' paths wants (sorted by key) as
// attrs returns them (false: the Service does not contribute).
func mergeAttributes(prefix netip.Prefix, wants servicePaths, attrs func(*bgp.Path) (bgp.Attributes, bool)) bgp.Path {
	out := bgp.Path{Prefix: prefix}
	var bw float32
	hasBW := false
	for _, sp := range wants {
		w, ok := attrs(sp.path)
		if !ok {
			continue
		}
		out.Communities = append(out.Communities, w.Communities...)
		out.LargeCommunities = append(out.LargeCommunities, w.LargeCommunities...)
		if w.LocalPref != nil && (out.LocalPref == nil || *w.LocalPref > *out.LocalPref) {
			v := *w.LocalPref
			out.LocalPref = &v
		}
		if w.LinkBandwidth != nil {
			hasBW = true
			bw += *w.LinkBandwidth
		}
	}
	if hasBW {
		out.LinkBandwidth = &bw
	}
	normalizePath(&out)
	return out
}
