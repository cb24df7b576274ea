package ipam

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	v1alpha1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// ReasonNotLoadBalancer is the Result reason for a Service that is not of type
// LoadBalancer (never written; the caller skips the Service).
const ReasonNotLoadBalancer = "NotLoadBalancer"

// Config selects the Services the allocator handles.
type Config struct {
	// Class is the spec.loadBalancerClass we own; empty means v1alpha1.DefaultLoadBalancerClass.
	Class string
	// DefaultClass also claims LoadBalancer Services without a class (--default-class).
	DefaultClass bool
}

func (c Config) class() string {
	if c.Class == "" {
		return v1alpha1.DefaultLoadBalancerClass
	}
	return c.Class
}

// Result is the allocator's decision for one Service.
type Result struct {
	// Key is "namespace/name".
	Key string
	// Ours is false when the Service is not ours (wrong class, no class without
	// DefaultClass, or not type LoadBalancer). The caller must then write nothing to it:
	// no status, condition, finalizer or event. Any address it held has been released.
	Ours bool
	// IPs are the desired status.loadBalancer.ingress addresses, in the order of the
	// Service's families (primary first). Empty when nothing could be assigned.
	IPs []netip.Addr
	// Pools holds the pool name of each entry of IPs.
	Pools []string
	// Allocated is the status of the bgplb.io/IPAllocated condition.
	Allocated bool
	// Reason is a v1alpha1.Reason* constant (or ReasonNotLoadBalancer); Message explains it
	// in words and names the field or object at fault.
	Reason  string
	Message string
	// Changed reports that IPs differ from the Service's current status ingress IPs, so
	// the status must be written (also when the status holds a hostname or an ipMode other
	// than VIP). False for a Service whose valid status was kept.
	Changed bool
}

// Ingress renders IPs as status.loadBalancer.ingress entries with ipMode VIP.
func (r Result) Ingress() []corev1.LoadBalancerIngress {
	vip := corev1.LoadBalancerIPModeVIP
	out := make([]corev1.LoadBalancerIngress, 0, len(r.IPs))
	for _, ip := range r.IPs {
		out = append(out, corev1.LoadBalancerIngress{IP: ip.String(), IPMode: &vip})
	}
	return out
}

// Condition renders the bgplb.io/IPAllocated condition (LastTransitionTime left zero:
// merge it with meta.SetStatusCondition so the time changes only on transitions).
func (r Result) Condition(generation int64) metav1.Condition {
	st := metav1.ConditionFalse
	if r.Allocated {
		st = metav1.ConditionTrue
	}
	return metav1.Condition{
		Type:               v1alpha1.ConditionIPAllocated,
		Status:             st,
		Reason:             r.Reason,
		Message:            r.Message,
		ObservedGeneration: generation,
	}
}

// PoolStatus is the desired status of one LoadBalancerIPPool.
type PoolStatus struct {
	Name string
	// Status holds the Ready, Conflicting and Invalid conditions (transition times zero;
	// merge with meta.SetStatusCondition) and per-family counts.
	Status v1alpha1.LoadBalancerIPPoolStatus
}

// Allocator is the LB-IPAM allocator: a pure, in-memory function of the pools and the
// Services it is shown. It never talks to the API server.
//
// Contract for the caller (the leader's controller):
//   - After cache sync call AssignAll with every Service (any class) so that addresses
//     already in Service statuses are claimed before anything new is handed out; then
//     write each Result with Ours && Changed (and the condition when it differs).
//   - On a Service add/update call Assign; on delete call Release. An address the allocator
//     already holds for a Service wins over that Service's status (an informer's copy may
//     lag behind our own write); Changed then asks for a rewrite, which is harmless. Write the Result
//     before calling Assign for another Service (one worker), so a released address is
//     not seen in two statuses at once.
//   - On any pool change call SetPools with all pools, write Pools(), and re-Assign every
//     Service (pending ones may now fit; ones whose pool shrank, vanished or stopped
//     selecting them move or lose their address). Until re-assigned, a Service keeps
//     reserving its old address, so it is never handed to another Service meanwhile.
//
// Decisions are deterministic: the same calls in the same order give the same results.
// Automatic allocation takes the lowest free address of the oldest eligible pool.
// The Allocator is safe for concurrent use.
type Allocator struct {
	mu  sync.Mutex
	cfg Config

	pools   map[string]*pool // pool name -> parsed pool
	ordered []*pool          // all pools, oldest first
	blocks  []*block         // blocks of usable pools, sorted by first address, disjoint

	ips   map[netip.Addr]*ipState       // held address -> its owners
	svcs  map[string]*holding           // service key -> what it holds
	byKey map[string]map[netip.Addr]int // sharing key -> address -> owners with that key
}

// ipState is one held address.
type ipState struct {
	owners []*holding // at least one; more only for compatible sharing-key Services
	blk    *block     // nil when no usable pool contains the address any more
}

// holding is what one Service holds, with what its request says about sharing. There is
// one per Service (10k on a large cluster), so it keeps the sharing terms only for a
// Service with a sharing key: without one nothing can share its addresses, and compatible
// reads nothing but its key.
type holding struct {
	key   string
	share *shareTerms // nil without a sharing key
	ips   []netip.Addr
}

// terms returns what h's Service says about sharing.
func (h *holding) terms() *shareTerms {
	if h.share != nil {
		return h.share
	}
	return &shareTerms{key: h.key}
}

// sharingKey returns the sharing key of h's Service ("" for none).
func (h *holding) sharingKey() string {
	if h.share != nil {
		return h.share.sharingKey
	}
	return ""
}

// New returns an allocator without pools.
func New(cfg Config) *Allocator {
	return &Allocator{
		cfg:   cfg,
		pools: map[string]*pool{},
		ips:   map[netip.Addr]*ipState{},
		svcs:  map[string]*holding{},
		byKey: map[string]map[netip.Addr]int{},
	}
}

// SetPools replaces the set of pools. Invalid pools (reason naming the field) and pools
// overlapping an older pool (Conflicting) hand out nothing. It returns the keys of the
// Services holding an address no usable pool contains any more (sorted); they keep it
// reserved until they are re-assigned.
func (a *Allocator) SetPools(in []*v1alpha1.LoadBalancerIPPool) []string {
	a.mu.Lock()
	defer a.mu.Unlock()

	a.pools = map[string]*pool{}
	a.ordered = a.ordered[:0]
	for _, p := range in {
		if p == nil || a.pools[p.Name] != nil {
			continue
		}
		pp := parsePool(p)
		a.pools[pp.name] = pp
		a.ordered = append(a.ordered, pp)
	}
	orderPools(a.ordered)
	a.blocks = markConflicts(a.ordered)
	for _, b := range a.blocks {
		b.hint = b.first
	}
	var orphans []string
	for ip, st := range a.ips {
		st.blk = a.lookup(ip)
		if st.blk != nil {
			st.blk.used++
			continue
		}
		for _, o := range st.owners {
			orphans = append(orphans, o.key)
		}
	}
	slices.Sort(orphans)
	return slices.Compact(orphans)
}

// Pools returns the desired status of every pool, oldest first.
func (a *Allocator) Pools() []PoolStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]PoolStatus, 0, len(a.ordered))
	for _, p := range a.ordered {
		out = append(out, PoolStatus{Name: p.name, Status: p.status()})
	}
	return out
}

// Allocation returns the addresses the allocator holds for a Service key.
func (a *Allocator) Allocation(key string) []netip.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	if h := a.svcs[key]; h != nil {
		return slices.Clone(h.ips)
	}
	return nil
}

// Release forgets the Service key (deleted Service) and frees what it held.
func (a *Allocator) Release(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.release(key)
}

// Assign decides the ingress addresses of svc; nsLabels are the labels of its namespace
// (for pool namespaceSelectors). Addresses already in svc's status (or held from an
// earlier call) are kept while still valid; otherwise the requested or a free address is
// taken. Not-ours Services release what they held and get Ours == false.
func (a *Allocator) Assign(svc *corev1.Service, nsLabels labels.Set) Result {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.assign(svc, nsLabels)
}

// AssignAll assigns a complete set of Services: first every Service the allocator holds
// nothing for claims the still valid addresses of its status (oldest Service first, so on
// a conflict the older wins), then each is assigned in that order. On a fresh allocator
// (leader start) this rebuilds every allocation from the statuses; on a resync, what the
// allocator holds wins over a status that may lag behind its own writes. Keys the allocator holds that are not in svcs are
// released. Results are in the order of svcs.
func (a *Allocator) AssignAll(svcs []*corev1.Service, nsLabels func(namespace string) labels.Set) []Result {
	a.mu.Lock()
	defer a.mu.Unlock()
	if nsLabels == nil {
		nsLabels = func(string) labels.Set { return nil }
	}
	order := slices.Clone(svcs)
	slices.SortStableFunc(order, func(x, y *corev1.Service) int {
		if c := x.CreationTimestamp.Compare(y.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(ServiceKey(x), ServiceKey(y))
	})
	present := make(map[string]bool, len(svcs))
	for _, svc := range svcs {
		present[ServiceKey(svc)] = true
	}
	for key := range a.svcs {
		if !present[key] {
			a.release(key)
		}
	}
	for _, svc := range order {
		if ours, _ := a.cfg.isOurs(svc); !ours || len(svc.Status.LoadBalancer.Ingress) == 0 {
			continue
		}
		if a.svcs[ServiceKey(svc)] != nil {
			continue // already held: our decision is newer than a possibly stale status
		}
		req, err := parseRequest(svc, nsLabels(svc.Namespace))
		if err != nil || (req.pool != "" && a.pools[req.pool] == nil) {
			continue
		}
		var keep []netip.Addr
		for _, f := range req.families {
			for _, ip := range req.status {
				if familyOf(ip) == f && a.canKeep(req, ip) == "" {
					keep = append(keep, ip)
					break
				}
			}
		}
		if len(keep) > 0 {
			a.hold(req, keep)
		}
	}
	byKey := make(map[string]Result, len(svcs))
	for _, svc := range order {
		byKey[ServiceKey(svc)] = a.assign(svc, nsLabels(svc.Namespace))
	}
	out := make([]Result, 0, len(svcs))
	for _, svc := range svcs {
		out = append(out, byKey[ServiceKey(svc)])
	}
	return out
}

type familyResult struct {
	f       family
	ip      netip.Addr
	pool    string
	reason  string
	message string
}

func (a *Allocator) assign(svc *corev1.Service, nsLabels labels.Set) Result {
	key := ServiceKey(svc)
	res := Result{Key: key}
	if ours, why := a.cfg.isOurs(svc); !ours {
		a.release(key)
		res.Reason = v1alpha1.ReasonNotOurClass
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
			res.Reason = ReasonNotLoadBalancer
		}
		res.Message = why
		return res
	}
	res.Ours = true
	req, err := parseRequest(svc, nsLabels)
	if err == nil && req.pool != "" && a.pools[req.pool] == nil {
		err = fmt.Errorf("annotation %s: pool %q does not exist", v1alpha1.AnnotationPool, req.pool)
	}
	if err != nil {
		a.release(key)
		res.Reason, res.Message = v1alpha1.ReasonInvalidRequest, err.Error()
		res.Changed = len(svc.Status.LoadBalancer.Ingress) > 0
		return res
	}

	prev := a.svcs[key]
	var got, failed []familyResult
	for _, f := range req.families {
		fr := a.pick(req, prev, f)
		if fr.ip.IsValid() {
			got = append(got, fr)
		} else {
			failed = append(failed, fr)
		}
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
