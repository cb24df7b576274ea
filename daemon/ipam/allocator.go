package ipam

import (
	"net/netip"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	v1alpha1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

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
// Automatic allocation takes the lowest free address of the eligible pool with the highest
// priority (equal priorities: the oldest).
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
		bad := err != nil || (req.pool != "" && a.pools[req.pool] == nil)
		fams := req.families
		if bad {
			fams = heldFamilies(req, nil)
		}
		var keep []netip.Addr
		for _, f := range fams {
			// A request that cannot be met keeps what the status shows (keep.go), so
			// that address is claimed before anything new is handed out. Whether a
			// requested address can be met is only known once every status is
			// claimed: until Assign decides, the status address is held.
			_, requested := req.requested.get(f)
			degraded := bad || requested
			for _, ip := range req.status {
				if familyOf(ip) != f {
					continue
				}
				_, keepable := a.keepable(req, ip)
				if a.canKeep(req, ip) == "" || degraded && keepable {
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
