// Per-Service decisions: keep, claim the requested, share, or take the lowest free address.
package ipam

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	v1alpha1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

type familyResult struct {
	f       family
	ip      netip.Addr
	pool    string
	reason  string
	message string
	// requested is set when the failure is the request's fault (a requested address
	// that cannot be claimed); kept when ip is then the held address kept despite it.
	requested bool
	kept      bool
}

func (a *Allocator) assign(svc *corev1.Service, nsLabels labels.Set) Result {
	key := ServiceKey(svc)
	res := Result{Key: key}
	if ours, why := a.cfg.isOurs(svc); !ours {
		a.release(key)
		res.Reason = v1alpha1.ReasonNotOurClass
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
			res.Reason = v1alpha1.ReasonNotLoadBalancer
		}
		res.Message = why
		return res
	}
	res.Ours = true
	req, err := parseRequest(svc, nsLabels)
	if err == nil && req.pool != "" && a.pools[req.pool] == nil {
		err = fmt.Errorf("annotation %s: pool %q does not exist", v1alpha1.AnnotationPool, req.pool)
	}
	prev := a.svcs[key]
	if err != nil {
		var kept []familyResult
		for _, f := range heldFamilies(req, prev) {
			if ip, pool, ok := a.keepHeld(req, prev, f); ok {
				kept = append(kept, familyResult{f: f, ip: ip, pool: pool, kept: true})
			}
		}
		res.Reason = v1alpha1.ReasonInvalidRequest
		if len(kept) == 0 {
			a.release(key)
			res.Message = err.Error()
			res.Changed = len(svc.Status.LoadBalancer.Ingress) > 0
			return res
		}
		res.Message = keptMessage(err.Error(), kept)
		return a.keep(req, res, kept)
	}

	var got, failed, kept []familyResult
	for _, f := range req.families {
		fr := a.pick(req, prev, f)
		if !fr.ip.IsValid() && fr.requested {
			if ip, pool, ok := a.keepHeld(req, prev, f); ok {
				fr.ip, fr.pool, fr.kept = ip, pool, true
				kept = append(kept, fr)
			}
		}
		if fr.ip.IsValid() {
			got = append(got, fr)
		} else {
			failed = append(failed, fr)
		}
	}
	if len(kept) > 0 {
		msgs := make([]string, 0, len(kept)+len(failed))
		for _, fr := range append(kept, failed...) {
			msgs = append(msgs, fr.f.String()+": "+fr.message)
		}
		res.Reason = kept[0].reason
		res.Message = keptMessage(strings.Join(msgs, "; "), kept)
		return a.keep(req, res, got)
	}
	if len(got) < req.need || len(got) == 0 {
		a.release(key)
		res.Reason = failed[0].reason
		msgs := make([]string, 0, len(failed))
		for _, fr := range failed {
			msgs = append(msgs, fr.f.String()+": "+fr.message)
		}
		res.Message = strings.Join(msgs, "; ")
		res.Changed = len(req.status) > 0
		return res
	}
	ips := make([]netip.Addr, 0, len(got))
	parts := make([]string, 0, len(got)+len(failed))
	for _, fr := range got {
		ips = append(ips, fr.ip)
		res.Pools = append(res.Pools, fr.pool)
		parts = append(parts, fmt.Sprintf("%s from pool %s", fr.ip, fr.pool))
	}
	for _, fr := range failed {
		parts = append(parts, fmt.Sprintf("no %s address (%s: %s)", fr.f, fr.reason, fr.message))
	}
	a.hold(req, ips)
	res.IPs = ips
	res.Allocated = true
	res.Reason = v1alpha1.ReasonAllocated
	res.Message = strings.Join(parts, "; ")
	res.Changed = req.statusOdd || !slices.Equal(ips, req.status)
	return res
}

// keep makes req's Service hold the addresses of frs (some kept through a bad request)
// and returns res with them and IPAllocated=False: reason and message are set by the caller.
func (a *Allocator) keep(req *request, res Result, frs []familyResult) Result {
	ips := make([]netip.Addr, 0, len(frs))
	for _, fr := range frs {
		ips = append(ips, fr.ip)
		res.Pools = append(res.Pools, fr.pool)
	}
	a.hold(req, ips)
	res.IPs = ips
	res.Changed = req.statusOdd || !slices.Equal(ips, req.status)
	return res
}

// pick chooses the address of family f: a still valid one we hold or the status shows,
// else the requested one, else a shared or free one.
func (a *Allocator) pick(req *request, prev *holding, f family) familyResult {
	fr := familyResult{f: f}
	// What we hold comes first: an informer's copy of the status may lag behind our own
	// last write, and flipping back to that older address would leave the API server
	// showing an address we consider free. On a fresh allocator only the status counts.
	var cands []netip.Addr
	if prev != nil {
		for _, ip := range prev.ips {
			if familyOf(ip) == f {
				cands = append(cands, ip)
			}
		}
	}
	for _, ip := range req.status {
		if familyOf(ip) == f {
			cands = append(cands, ip)
		}
	}
	for _, ip := range cands {
		if a.canKeep(req, ip) == "" {
			fr.ip, fr.pool = ip, a.lookup(ip).pool.name
			return fr
		}
	}
	if want, ok := req.requested.get(f); ok {
		fr.reason, fr.message = a.claimable(req, want)
		if fr.reason == "" {
			fr.ip, fr.pool = want, a.lookup(want).pool.name
		}
		fr.requested = fr.reason != ""
		return fr
	}
	return a.auto(req, f)
}

// canKeep returns "" when req may keep ip, else why not.
func (a *Allocator) canKeep(req *request, ip netip.Addr) string {
	b := a.lookup(ip)
	if b == nil {
		return "not in any usable pool"
	}
	p := b.pool
	switch {
	case req.pool != "" && p.name != req.pool:
		return fmt.Sprintf("in pool %s, not the one named by %s", p.name, v1alpha1.AnnotationPool)
	case !p.selects(req.labels, req.nsLabels):
		return fmt.Sprintf("pool %s does not select the Service", p.name)
	case p.avoided(ip):
		return fmt.Sprintf("pool %s avoids .0 and .255 (avoidBuggyIPs)", p.name)
	}
	if want, ok := req.requested.get(familyOf(ip)); ok && want != ip {
		return fmt.Sprintf("%s was requested", want)
	}
	return a.shareable(req, ip)
}

// shareable returns "" when ip is free or every other owner can share it with req.
func (a *Allocator) shareable(req *request, ip netip.Addr) string {
	st := a.ips[ip]
	if st == nil {
		return ""
	}
	for _, o := range st.owners {
		if o.key == req.key {
			continue
		}
		if why := compatible(&req.shareTerms, o.terms()); why != "" {
			return why
		}
	}
	return ""
}

// claimable checks a requested address; it returns a reason and message when it cannot
// be taken, or "" when it can.
func (a *Allocator) claimable(req *request, ip netip.Addr) (reason, message string) {
	b := a.lookup(ip)
	if b == nil {
		return v1alpha1.ReasonRequestedIPUnavailable, fmt.Sprintf("requested %s is not in any usable pool", ip)
	}
	p := b.pool
	switch {
	case req.pool != "" && p.name != req.pool:
		return v1alpha1.ReasonRequestedIPUnavailable, fmt.Sprintf("requested %s is in pool %s, but %s names pool %s",
			ip, p.name, v1alpha1.AnnotationPool, req.pool)
	case !p.selects(req.labels, req.nsLabels):
		return v1alpha1.ReasonRequestedIPUnavailable, fmt.Sprintf("requested %s is in pool %s, whose serviceSelector/namespaceSelector does not select the Service", ip, p.name)
	case p.disabled:
		return v1alpha1.ReasonRequestedIPUnavailable, fmt.Sprintf("requested %s is in pool %s, which is disabled", ip, p.name)
	case p.avoided(ip):
		return v1alpha1.ReasonRequestedIPUnavailable, fmt.Sprintf("requested %s is avoided by pool %s (avoidBuggyIPs)", ip, p.name)
	}
	if why := a.shareable(req, ip); why != "" {
		reason := v1alpha1.ReasonRequestedIPUnavailable
		if req.sharingKey != "" {
			for _, o := range a.ips[ip].owners {
				if o.sharingKey() == req.sharingKey {
					reason = v1alpha1.ReasonSharingConflict
				}
			}
		}
		return reason, fmt.Sprintf("requested %s is %s", ip, why)
	}
	return "", ""
}

// auto takes an address of family f for a Service that requested none: one already
// used under its sharing key when compatible, else the lowest free one.
func (a *Allocator) auto(req *request, f family) familyResult {
	fr := familyResult{f: f}
	var cands []*pool
	if req.pool != "" {
		p := a.pools[req.pool]
		switch {
		case p.invalid != "":
			fr.message = fmt.Sprintf("pool %s is invalid: %s", p.name, p.invalid)
		case p.conflicting != "":
			fr.message = fmt.Sprintf("pool %s is conflicting: %s", p.name, p.conflicting)
		case p.disabled:
			fr.message = fmt.Sprintf("pool %s is disabled", p.name)
		case !p.hasFamily(bool(f)):
			fr.message = fmt.Sprintf("pool %s has no %s block", p.name, f)
		case !p.selects(req.labels, req.nsLabels):
			fr.message = fmt.Sprintf("pool %s does not select the Service (serviceSelector/namespaceSelector)", p.name)
		default:
			cands = []*pool{p}
		}
	} else {
		for _, p := range a.ordered {
			if p.ready() && p.autoAssign && p.hasFamily(bool(f)) && p.selects(req.labels, req.nsLabels) {
				cands = append(cands, p)
			}
		}
		if len(cands) == 0 {
			fr.message = fmt.Sprintf("no ready pool with autoAssign and %s addresses selects the Service", f)
		}
		// Higher priority first; a stable sort keeps equal priorities oldest first.
		slices.SortStableFunc(cands, func(x, y *pool) int { return cmp.Compare(y.priority, x.priority) })
	}
	if len(cands) == 0 {
		fr.reason = v1alpha1.ReasonNoPool
		return fr
	}
	if req.sharingKey != "" {
		shared := make([]netip.Addr, 0, len(a.byKey[req.sharingKey]))
		for ip := range a.byKey[req.sharingKey] {
			if familyOf(ip) == f {
				shared = append(shared, ip)
			}
		}
		slices.SortFunc(shared, netip.Addr.Compare)
		for _, ip := range shared {
			st := a.ips[ip]
			if st.blk == nil || !slices.Contains(cands, st.blk.pool) || st.blk.pool.avoided(ip) {
				continue
			}
			if a.shareable(req, ip) == "" {
				fr.ip, fr.pool = ip, st.blk.pool.name
				return fr
			}
		}
	}
	names := make([]string, 0, len(cands))
	for _, p := range cands {
		for _, b := range p.blocks {
			if familyOf(b.first) != f {
				continue
			}
			if ip, ok := a.nextFree(b); ok {
				fr.ip, fr.pool = ip, p.name
				return fr
			}
		}
		names = append(names, p.name)
	}
	fr.reason = v1alpha1.ReasonPoolExhausted
	fr.message = fmt.Sprintf("no free %s address in pool(s) %s", f, strings.Join(names, ", "))
	return fr
}

// nextFree returns the lowest address of b that nobody holds and the pool does not avoid.
// It only advances b.hint over held or avoided addresses, so it is amortized O(1).
func (a *Allocator) nextFree(b *block) (netip.Addr, bool) {
	ip := b.hint
	for ip.IsValid() && ip.Compare(b.last) <= 0 {
		if _, held := a.ips[ip]; !held && !b.pool.avoided(ip) {
			b.hint = ip
			return ip, true
		}
		if ip == b.last {
			break
		}
		ip = ip.Next()
	}
	b.hint = netip.Addr{}
	return netip.Addr{}, false
}
