//go:build linux

package bpf

// The VIP marks (lb_vips) and the per-service source ranges (lb_src_ranges).

import (
	"fmt"
	"net/netip"
	"slices"
)

// PutVIP marks addr as a VIP this node announces: ICMP/ICMPv6 echo requests
// to it are answered; fragments, truncated TCP/UDP packets and packets to
// ports/protocols without a service entry (except ICMP) are dropped and
// counted instead of being routed back to the router. Put it after the
// VIP's service entries and before announcing; delete it after withdrawing
// and before (or with) the last service entry.
func (m *Maps) PutVIP(addr netip.Addr) error {
	if !addr.IsValid() {
		return fmt.Errorf("put vip: invalid address")
	}
	k := lbLbVipKey{Addr: addr.Unmap().As16()}
	if err := m.m.LbVips.Put(&k, uint32(1)); err != nil { // LB_VIP_F_ECHO
		return fmt.Errorf("put vip %v: %w", addr, err)
	}
	return nil
}

// DeleteVIP unmarks addr (after withdrawing it). Missing is not an error.
func (m *Maps) DeleteVIP(addr netip.Addr) error {
	k := lbLbVipKey{Addr: addr.Unmap().As16()}
	if err := ignoreNotExist(m.m.LbVips.Delete(&k)); err != nil {
		return fmt.Errorf("delete vip %v: %w", addr, err)
	}
	return nil
}

// VIPs lists the VIPs in lb_vips.
func (m *Maps) VIPs() ([]netip.Addr, error) {
	var (
		k    lbLbVipKey
		v    uint32
		vips []netip.Addr
	)
	it := m.m.LbVips.Iterate()
	for it.Next(&k, &v) {
		vips = append(vips, addrFrom16(k.Addr))
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("iterate vips: %w", err)
	}
	slices.SortFunc(vips, netip.Addr.Compare)
	return vips, nil
}

func srcRangeKey(svcID uint32, p netip.Prefix) (lbLbSrcRangeKey, error) {
	if !p.IsValid() {
		return lbLbSrcRangeKey{}, fmt.Errorf("source range of service %d: invalid prefix", svcID)
	}
	p = p.Masked()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	return lbLbSrcRangeKey{Prefixlen: uint32(32 + bits), SvcId: svcID, Addr: p.Addr().As16()}, nil
}

// SetSourceRanges replaces the loadBalancerSourceRanges of service svcID
// (enforced only while its Service.SourceRanges is true). To enable them
// without a window where everyone is dropped, set the ranges first, then
// PutService with SourceRanges: true.
func (m *Maps) SetSourceRanges(svcID uint32, prefixes []netip.Prefix) error {
	want := make(map[lbLbSrcRangeKey]bool, len(prefixes))
	for _, p := range prefixes {
		k, err := srcRangeKey(svcID, p)
		if err != nil {
			return err
		}
		want[k] = true
	}
	var (
		k     lbLbSrcRangeKey
		v     uint8
		stale []lbLbSrcRangeKey
	)
	it := m.m.LbSrcRanges.Iterate()
	for it.Next(&k, &v) {
		if k.SvcId == svcID && !want[k] {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("iterate source ranges: %w", err)
	}
	for k := range want {
		if err := m.m.LbSrcRanges.Put(&k, uint8(1)); err != nil {
			return fmt.Errorf("put source range of service %d: %w", svcID, err)
		}
	}
	for _, k := range stale {
		if err := ignoreNotExist(m.m.LbSrcRanges.Delete(&k)); err != nil {
			return fmt.Errorf("delete source range of service %d: %w", svcID, err)
		}
	}
	return nil
}

// UpdateSourceRanges changes the ranges of service svcID from old (what the caller
// wrote last, with SetSourceRanges or UpdateSourceRanges) to new: it writes the ranges
// new adds, then deletes the ones it drops, so a client inside both is never dropped.
// It touches only those entries, where SetSourceRanges walks the ranges of every
// service; use SetSourceRanges when what the map holds is not known (after a restart).
func (m *Maps) UpdateSourceRanges(svcID uint32, old, new []netip.Prefix) error {
	keys := func(ps []netip.Prefix) (map[lbLbSrcRangeKey]bool, error) {
		out := make(map[lbLbSrcRangeKey]bool, len(ps))
		for _, p := range ps {
			k, err := srcRangeKey(svcID, p)
			if err != nil {
				return nil, err
			}
			out[k] = true
		}
		return out, nil
	}
	have, err := keys(old)
	if err != nil {
		return err
	}
	want, err := keys(new)
	if err != nil {
		return err
	}
	for k := range want {
		if have[k] {
			continue
		}
		if err := m.m.LbSrcRanges.Put(&k, uint8(1)); err != nil {
			return fmt.Errorf("put source range of service %d: %w", svcID, err)
		}
	}
	for k := range have {
		if want[k] {
			continue
		}
		if err := ignoreNotExist(m.m.LbSrcRanges.Delete(&k)); err != nil {
			return fmt.Errorf("delete source range of service %d: %w", svcID, err)
		}
	}
	return nil
}

// SourceRanges returns the ranges of service svcID.
func (m *Maps) SourceRanges(svcID uint32) ([]netip.Prefix, error) {
	var (
		k   lbLbSrcRangeKey
		v   uint8
		out []netip.Prefix
	)
	it := m.m.LbSrcRanges.Iterate()
	for it.Next(&k, &v) {
		if k.SvcId != svcID {
			continue
		}
		a := netip.AddrFrom16(k.Addr)
		bits := int(k.Prefixlen) - 32
		if a.Is4In6() {
			a, bits = a.Unmap(), bits-96
		}
		out = append(out, netip.PrefixFrom(a, bits))
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("iterate source ranges: %w", err)
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out, nil
}
