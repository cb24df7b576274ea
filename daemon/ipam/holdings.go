// Bookkeeping of held addresses: which Service holds which address, per-block use counts
// and the sharing-key index.
package ipam

import (
	"net/netip"
	"slices"
	"strings"
)

// lookup returns the usable block containing ip, or nil.
func (a *Allocator) lookup(ip netip.Addr) *block {
	i, _ := slices.BinarySearchFunc(a.blocks, ip, func(b *block, ip netip.Addr) int {
		return b.last.Compare(ip)
	})
	if i < len(a.blocks) && a.blocks[i].contains(ip) {
		return a.blocks[i]
	}
	return nil
}

// hold makes req's Service hold exactly ips. An unchanged holding stays as it is (every
// Service is re-assigned on a pool change).
func (a *Allocator) hold(req *request, ips []netip.Addr) {
	var share *shareTerms
	if req.sharingKey != "" {
		share = &req.shareTerms
	}
	old := a.svcs[req.key]
	if old != nil && slices.Equal(old.ips, ips) && sameTerms(old.share, share) {
		return
	}
	if share != nil {
		t := *share // not the whole request
		share = &t
	}
	h := &holding{key: req.key, share: share, ips: slices.Clone(ips)}
	if old != nil {
		for _, ip := range old.ips {
			a.dropOwner(ip, old)
		}
	}
	a.svcs[req.key] = h
	for _, ip := range h.ips {
		a.addOwner(ip, h)
	}
}

func (a *Allocator) release(key string) {
	h := a.svcs[key]
	if h == nil {
		return
	}
	for _, ip := range h.ips {
		a.dropOwner(ip, h)
	}
	delete(a.svcs, key)
}

func (a *Allocator) addOwner(ip netip.Addr, h *holding) {
	st := a.ips[ip]
	if st == nil {
		st = &ipState{blk: a.lookup(ip)}
		a.ips[ip] = st
		if st.blk != nil {
			st.blk.used++
		}
	}
	st.owners = append(st.owners, h)
	slices.SortFunc(st.owners, func(x, y *holding) int { return strings.Compare(x.key, y.key) })
	if k := h.sharingKey(); k != "" {
		if a.byKey[k] == nil {
			a.byKey[k] = map[netip.Addr]int{}
		}
		a.byKey[k][ip]++
	}
}

func (a *Allocator) dropOwner(ip netip.Addr, h *holding) {
	st := a.ips[ip]
	if st == nil {
		return
	}
	i := slices.Index(st.owners, h)
	if i < 0 {
		return
	}
	st.owners = slices.Delete(st.owners, i, i+1)
	if k := h.sharingKey(); k != "" {
		if a.byKey[k][ip]--; a.byKey[k][ip] <= 0 {
			delete(a.byKey[k], ip)
			if len(a.byKey[k]) == 0 {
				delete(a.byKey, k)
			}
		}
	}
	if len(st.owners) > 0 {
		return
	}
	delete(a.ips, ip)
	if b := st.blk; b != nil {
		b.used--
		if !b.hint.IsValid() || ip.Compare(b.hint) < 0 {
			b.hint = ip
		}
	}
}
