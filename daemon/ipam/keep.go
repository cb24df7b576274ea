// Keeping a live address through a bad request (decision 10 of docs/design.md): a
// Service whose request turns invalid (a typo in the requested-IP or pool annotation, a
// requested address outside every pool or in use) keeps the addresses it holds, still in
// its status and announced, with IPAllocated=False naming the fault, until the request is
// fixed or removed. Nobody else can take them meanwhile.
package ipam

import (
	"fmt"
	"net/netip"
	"strings"
)

// keepable reports whether req's Service may go on holding ip although its request does
// not allow it: ip must still lie in a usable pool, not be avoided there, and be free or
// shared compatibly. Pool and selector constraints of the (bad) request are not applied.
func (a *Allocator) keepable(req *request, ip netip.Addr) (pool string, ok bool) {
	b := a.lookup(ip)
	if b == nil || b.pool.avoided(ip) || a.shareable(req, ip) != "" {
		return "", false
	}
	return b.pool.name, true
}

// keepHeld returns the address of family f that req's Service holds (prev, else its
// status on a fresh allocator) and may keep through a bad request.
func (a *Allocator) keepHeld(req *request, prev *holding, f family) (netip.Addr, string, bool) {
	var cands []netip.Addr
	if prev != nil {
		cands = prev.ips
	} else {
		cands = req.status
	}
	for _, ip := range cands {
		if familyOf(ip) != f {
			continue
		}
		if pool, ok := a.keepable(req, ip); ok {
			return ip, pool, true
		}
	}
	return netip.Addr{}, "", false
}

// heldFamilies returns the families of what req's Service holds (prev, else its status),
// in that order: the order of its families when its request cannot be read.
func heldFamilies(req *request, prev *holding) []family {
	ips := req.status
	if prev != nil {
		ips = prev.ips
	}
	var fs []family
	for _, ip := range ips {
		fs = appendFamily(fs, familyOf(ip))
	}
	return fs
}

// keptMessage explains what is kept and why.
func keptMessage(fault string, kept []familyResult) string {
	parts := make([]string, 0, len(kept))
	for _, fr := range kept {
		parts = append(parts, fmt.Sprintf("%s from pool %s", fr.ip, fr.pool))
	}
	return fmt.Sprintf("%s; keeping %s until the request is fixed or removed", fault, strings.Join(parts, ", "))
}
