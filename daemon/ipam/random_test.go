package ipam

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	v1alpha1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// chooser yields decisions; the randomized test uses math/rand, the fuzz target bytes.
type chooser interface {
	intn(n int) int
	done() bool
}

type randChooser struct {
	r    *rand.Rand
	left int
}

func (c *randChooser) intn(n int) int { c.left--; return c.r.IntN(n) }
func (c *randChooser) done() bool     { return c.left <= 0 }

type byteChooser struct{ b []byte }

func (c *byteChooser) intn(n int) int {
	if len(c.b) == 0 {
		return 0
	}
	v := int(c.b[0]) % n
	c.b = c.b[1:]
	return v
}
func (c *byteChooser) done() bool { return len(c.b) == 0 }

// The menu of pool blocks overlaps on purpose (small ranges so exhaustion happens).
var blockMenu = []string{
	"203.0.113.0/30", "203.0.113.2-203.0.113.5", "203.0.113.8/29", "203.0.113.255-203.0.114.1",
	"2001:db8:ffff::/126", "2001:db8:ffff::2-2001:db8:ffff::5", "203.0.113.300/30",
}

var ipMenu = []string{
	"203.0.113.0", "203.0.113.1", "203.0.113.3", "203.0.113.9", "203.0.114.0", "198.51.100.1",
	"2001:db8:ffff::1", "2001:db8:ffff::4", "bogus",
}

type sim struct {
	t     testing.TB
	c     chooser
	a     *Allocator
	pools []*v1alpha1.LoadBalancerIPPool
	svcs  map[string]*corev1.Service // live Services (statuses as the controller wrote them)
	cfg   Config
	stats *simStats
}

// simStats counts what a run exercised, so the test fails if the generator degenerates.
type simStats struct {
	reasons  map[string]int
	shared   int // checks that saw one address in two statuses
	restarts int
}

func (s *sim) randomPools() []*v1alpha1.LoadBalancerIPPool {
	n := s.c.intn(4)
	var out []*v1alpha1.LoadBalancerIPPool
	for i := 0; i < n; i++ {
		var blocks []string
		for j := 0; j <= s.c.intn(2); j++ {
			blocks = append(blocks, blockMenu[s.c.intn(len(blockMenu))])
		}
		p := mkPool(fmt.Sprintf("p%d", s.c.intn(5)), s.c.intn(3), blocks...)
		switch s.c.intn(8) {
		case 0:
			disabled(p)
		case 1:
			noAuto(p)
		case 2:
			avoidBuggy(p)
		case 3:
			svcSelector("team", "a")(p)
		}
		out = append(out, p)
	}
	return out
}

func (s *sim) randomService(name string) *corev1.Service {
	var opts []svcOpt
	switch s.c.intn(10) {
	case 0:
		opts = append(opts, class("example.com/other"))
	case 1:
		opts = append(opts, class(""))
	case 2:
		opts = append(opts, svcType(corev1.ServiceTypeClusterIP))
	}
	switch s.c.intn(5) {
	case 0:
		opts = append(opts, families(reqDual, fam4, fam6))
	case 1:
		opts = append(opts, families(prefDual, fam6, fam4))
	case 2:
		opts = append(opts, families(single, fam6))
	}
	if s.c.intn(4) == 0 {
		opts = append(opts, lbIP(ipMenu[s.c.intn(len(ipMenu))]))
	}
	if s.c.intn(6) == 0 {
		opts = append(opts, annot(v1alpha1.AnnotationPool, fmt.Sprintf("p%d", s.c.intn(5))))
	}
	if k := s.c.intn(4); k > 0 {
		opts = append(opts, sharing(fmt.Sprintf("k%d", k%2)))
	}
	var ps []int32
	for _, p := range []int32{80, 81, -53} {
		if s.c.intn(2) == 0 {
			ps = append(ps, p)
		}
	}
	opts = append(opts, ports(ps...), selector(fmt.Sprintf("s%d", s.c.intn(2))))
	if s.c.intn(2) == 0 {
		opts = append(opts, local)
	}
	if s.c.intn(3) == 0 {
		opts = append(opts, label("team", "a"))
	}
	opts = append(opts, created(s.c.intn(4)))
	svc := mkSvc(name, opts...)
	if old := s.svcs[name]; old != nil {
		svc.CreationTimestamp = old.CreationTimestamp
		svc.Status = old.Status
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
			svc.Status.LoadBalancer.Ingress = nil // the API server clears it on a type change
		}
	}
	return svc
}

func (s *sim) assign(svc *corev1.Service) Result {
	r := s.a.Assign(svc, nil)
	if !r.Ours && len(r.IPs) > 0 {
		s.t.Fatalf("not-ours Service %s got IPs %v", r.Key, r.IPs)
	}
	writeStatus(svc, r)
	s.svcs[svc.Name] = svc
	if s.stats != nil {
		s.stats.reasons[r.Reason]++
	}
	return r
}

func (s *sim) ours(svc *corev1.Service) bool { ok, _ := s.cfg.isOurs(svc); return ok }

func (s *sim) sorted() []*corev1.Service {
	out := make([]*corev1.Service, 0, len(s.svcs))
	for _, svc := range s.svcs {
		out = append(out, svc)
	}
	slices.SortFunc(out, func(a, b *corev1.Service) int { return cmpStr(a.Name, b.Name) })
	return out
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// converge re-assigns every Service until nothing changes (the controller's resync).
func (s *sim) converge() {
	for round := 0; round < 10; round++ {
		changed := false
		for _, svc := range s.sorted() {
			if s.assign(svc).Changed {
				changed = true
			}
		}
		if !changed {
			return
		}
	}
	s.t.Fatalf("assignments do not converge")
}

func (s *sim) step() {
	switch op := s.c.intn(10); {
	case op < 5: // create or update
		name := fmt.Sprintf("svc%d", s.c.intn(10))
		s.assign(s.randomService(name))
	case op < 7: // delete
		name := fmt.Sprintf("svc%d", s.c.intn(10))
		delete(s.svcs, name)
		s.a.Release("default/" + name)
	case op < 9: // pool change, then the controller re-assigns every Service
		s.pools = s.randomPools()
		s.a.SetPools(s.pools)
		for _, svc := range s.sorted() {
			s.assign(svc)
		}
	default: // restart after convergence: nothing may move and nothing is re-written
		s.converge()
		before := map[string]string{}
		for _, svc := range s.sorted() {
			before[svc.Name] = ipStrings(s.a.Allocation(ServiceKey(svc)))
		}
		s.a = New(s.cfg)
		s.a.SetPools(s.pools)
		if s.stats != nil {
			s.stats.restarts++
		}
		svcs := s.sorted()
		for i, r := range s.a.AssignAll(svcs, nil) {
			if r.Ours && r.Changed {
				s.t.Fatalf("restart re-wrote %s: %v -> %v (%s: %s)", r.Key, svcs[i].Status.LoadBalancer.Ingress, r.IPs, r.Reason, r.Message)
			}
			if got := ipStrings(r.IPs); got != before[svcs[i].Name] {
				s.t.Fatalf("restart moved %s: %q -> %q", r.Key, before[svcs[i].Name], got)
			}
			writeStatus(svcs[i], r)
		}
	}
	s.check()
}

// check verifies the invariants from the Services' statuses alone (not the allocator's
// bookkeeping): every address in the status of one of our Services is held by it, lies in
// a usable pool, and is shared only by Services with a compatible sharing key.
func (s *sim) check() {
	usable := New(s.cfg)
	usable.SetPools(s.pools)
	owners := map[netip.Addr][]*corev1.Service{}
	for _, svc := range s.sorted() {
		if !s.ours(svc) {
			if got := s.a.Allocation(ServiceKey(svc)); len(got) > 0 {
				s.t.Fatalf("allocator holds %v for not-ours %s", got, svc.Name)
			}
			continue
		}
		var st []string
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			st = append(st, ing.IP)
			ip := netip.MustParseAddr(ing.IP)
			owners[ip] = append(owners[ip], svc)
			if usable.lookup(ip) == nil {
				s.t.Fatalf("%s has %s, which is in no usable pool", svc.Name, ip)
			}
		}
		if held := ipStrings(s.a.Allocation(ServiceKey(svc))); held != joinStr(st) {
			s.t.Fatalf("%s: status %v but allocator holds %q", svc.Name, st, held)
		}
	}
	for ip, svcs := range owners {
		if len(svcs) > 1 && s.stats != nil {
			s.stats.shared++
		}
		for i := range svcs {
			for j := i + 1; j < len(svcs); j++ {
				if why := canShare(svcs[i], svcs[j]); why != "" {
					s.t.Fatalf("%s assigned to %s and %s: %s", ip, svcs[i].Name, svcs[j].Name, why)
				}
			}
		}
	}
}

func joinStr(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += ","
		}
		out += s
	}
	return out
}

// canShare is an independent statement of decision 6.
func canShare(a, b *corev1.Service) string {
	ka, kb := a.Annotations[v1alpha1.AnnotationSharingKey], b.Annotations[v1alpha1.AnnotationSharingKey]
	if ka == "" || ka != kb {
		return "no common sharing key"
	}
	if a.Spec.ExternalTrafficPolicy != b.Spec.ExternalTrafficPolicy {
		return "different traffic policy"
	}
	if a.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal &&
		labels.Set(a.Spec.Selector).String() != labels.Set(b.Spec.Selector).String() {
		return "Local with different selectors"
	}
	for _, pa := range a.Spec.Ports {
		for _, pb := range b.Spec.Ports {
			if pa.Port == pb.Port && pa.Protocol == pb.Protocol {
				return fmt.Sprintf("port %d/%s overlaps", pa.Port, pa.Protocol)
			}
		}
	}
	return ""
}

func runSim(t testing.TB, c chooser, stats *simStats) {
	s := &sim{t: t, c: c, cfg: Config{DefaultClass: c.intn(2) == 0}, svcs: map[string]*corev1.Service{}, stats: stats}
	s.a = New(s.cfg)
	s.pools = s.randomPools()
	s.a.SetPools(s.pools)
	for !c.done() {
		s.step()
	}
}

func TestRandomizedNoDoubleAssignment(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 30
	}
	stats := &simStats{reasons: map[string]int{}}
	for seed := 0; seed < seeds; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			runSim(t, &randChooser{r: rand.New(rand.NewPCG(uint64(seed), 42)), left: 3000}, stats)
		})
	}
	t.Logf("reasons %v, shared-address observations %d, restarts %d", stats.reasons, stats.shared, stats.restarts)
	for _, r := range []string{v1alpha1.ReasonAllocated, v1alpha1.ReasonNoPool, v1alpha1.ReasonPoolExhausted,
		v1alpha1.ReasonRequestedIPUnavailable, v1alpha1.ReasonInvalidRequest, v1alpha1.ReasonSharingConflict,
		v1alpha1.ReasonNotOurClass, v1alpha1.ReasonNotLoadBalancer} {
		if stats.reasons[r] == 0 {
			t.Errorf("the generator never produced reason %s", r)
		}
	}
	if stats.shared == 0 || stats.restarts == 0 {
		t.Errorf("the generator never shared an address (%d) or restarted (%d)", stats.shared, stats.restarts)
	}
}

func FuzzAllocator(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte("sharing keys and pools and restarts and deletes, all mixed up together"))
	f.Fuzz(func(t *testing.T, data []byte) {
		runSim(t, &byteChooser{b: data}, nil)
	})
}
