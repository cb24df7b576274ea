package ipam

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	v1alpha1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// restartFixture allocates a mixed set of Services in random order and writes statuses.
func restartFixture(t testing.TB, r *rand.Rand) ([]*v1alpha1.LoadBalancerIPPool, []*corev1.Service) {
	pools := []*v1alpha1.LoadBalancerIPPool{
		mkPool("a", 0, "203.0.113.0/26", "2001:db8:ffff::/120"),
		withPoolOpts(mkPool("b", 1, "203.0.113.64/27"), avoidBuggy, svcSelector("team", "b")),
		withPoolOpts(mkPool("manual", 2, "203.0.113.128/28"), noAuto),
		mkPool("overlap", 3, "203.0.113.60/30"),
	}
	var svcs []*corev1.Service
	for i := 0; i < 150; i++ {
		opts := []svcOpt{created(r.IntN(1000))}
		switch r.IntN(6) {
		case 0:
			opts = append(opts, families(reqDual, fam4, fam6))
		case 1:
			opts = append(opts, families(prefDual, fam6, fam4))
		case 2:
			opts = append(opts, label("team", "b"))
		case 3:
			opts = append(opts, annot(v1alpha1.AnnotationPool, "manual"))
		case 4:
			opts = append(opts, sharing(fmt.Sprint("k", r.IntN(3))), ports(int32(80+r.IntN(5))))
		}
		if r.IntN(10) == 0 {
			opts = append(opts, lbIP(fmt.Sprintf("203.0.113.%d", r.IntN(64))))
		}
		svcs = append(svcs, mkSvc(fmt.Sprint("svc", i), opts...))
	}
	a := newAlloc(t, Config{}, pools...)
	for _, i := range r.Perm(len(svcs)) {
		writeStatus(svcs[i], a.Assign(svcs[i], nil))
	}
	return pools, svcs
}

// TestRestartKeepsEverything rebuilds the allocator from the Services five times (A5):
// every Service keeps its exact addresses and no status needs a write.
func TestRestartKeepsEverything(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	pools, svcs := restartFixture(t, r)
	want := map[string]string{}
	allocated := 0
	for _, s := range svcs {
		var ips []string
		for _, ing := range s.Status.LoadBalancer.Ingress {
			ips = append(ips, ing.IP)
		}
		want[ServiceKey(s)] = joinStr(ips)
		if len(ips) > 0 {
			allocated++
		}
	}
	if allocated < 100 {
		t.Fatalf("fixture allocated only %d of %d Services", allocated, len(svcs))
	}
	for restart := 0; restart < 5; restart++ {
		// Informers deliver in any order, and pools too.
		r.Shuffle(len(svcs), func(i, j int) { svcs[i], svcs[j] = svcs[j], svcs[i] })
		r.Shuffle(len(pools), func(i, j int) { pools[i], pools[j] = pools[j], pools[i] })
		a := newAlloc(t, Config{}, pools...)
		for i, res := range a.AssignAll(svcs, nil) {
			if res.Key != ServiceKey(svcs[i]) {
				t.Fatalf("result %d is for %s, want %s", i, res.Key, ServiceKey(svcs[i]))
			}
			if got := ipStrings(res.IPs); got != want[res.Key] || res.Changed {
				t.Fatalf("restart %d: %s got %q (changed=%v, %s: %s), want %q", restart, res.Key, got, res.Changed, res.Reason, res.Message, want[res.Key])
			}
		}
		// Incremental events after the rebuild change nothing either.
		for _, s := range svcs {
			if res := a.Assign(s, nil); res.Changed {
				t.Fatalf("restart %d: event for %s re-writes %v", restart, res.Key, res.IPs)
			}
		}
	}
}

// TestAssignAllOlderWinsConflicts: two statuses claiming one address (e.g. written by
// another implementation): the older Service keeps it, the younger moves, independent of
// the input order.
func TestAssignAllOlderWinsConflicts(t *testing.T) {
	for _, order := range [][]int{{0, 1}, {1, 0}} {
		svcs := []*corev1.Service{
			mkSvc("young", created(20), status("203.0.113.1")),
			mkSvc("old", created(10), status("203.0.113.1")),
		}
		a := newAlloc(t, Config{}, mkPool("p", 0, "203.0.113.0/30"))
		in := []*corev1.Service{svcs[order[0]], svcs[order[1]]}
		got := map[string]string{}
		for _, r := range a.AssignAll(in, nil) {
			got[r.Key] = ipStrings(r.IPs)
		}
		if got["default/old"] != "203.0.113.1" || got["default/young"] != "203.0.113.0" {
			t.Fatalf("order %v: %v", order, got)
		}
	}
	// AssignAll forgets Services that are gone.
	a := newAlloc(t, Config{}, mkPool("p", 0, "203.0.113.0/32"))
	a.Assign(mkSvc("gone"), nil)
	if r := a.AssignAll([]*corev1.Service{mkSvc("new")}, nil); ipStrings(r[0].IPs) != "203.0.113.0" {
		t.Fatalf("AssignAll kept a vanished Service's address: %+v", r[0])
	}
}

func allocateN(tb testing.TB, n int) time.Duration {
	a := newAlloc(tb, Config{}, mkPool("big", 0, "203.0.0.0/16", "2001:db8:ffff::/112"))
	svcs := make([]*corev1.Service, n)
	for i := range svcs {
		if i%4 == 0 {
			svcs[i] = mkSvc(fmt.Sprint("svc", i), families(reqDual, fam4, fam6))
		} else {
			svcs[i] = mkSvc(fmt.Sprint("svc", i))
		}
	}
	start := time.Now()
	for _, s := range svcs {
		if r := a.Assign(s, nil); !r.Allocated {
			tb.Fatalf("%s: %s %s", r.Key, r.Reason, r.Message)
		}
	}
	return time.Since(start)
}

// TestAllocate10kIsFast guards against quadratic behaviour (issue target: 10k in ≤ 60 s).
func TestAllocate10kIsFast(t *testing.T) {
	if d := allocateN(t, 10000); d > 3*time.Second {
		t.Fatalf("allocating 10k Services took %v", d)
	}
}

func BenchmarkAllocate10k(b *testing.B) {
	for b.Loop() {
		allocateN(b, 10000)
	}
}

// BenchmarkAssignAll10k measures a leader start: rebuilding 10k allocations from statuses.
func BenchmarkAssignAll10k(b *testing.B) {
	pool := mkPool("big", 0, "203.0.0.0/16")
	a := newAlloc(b, Config{}, pool)
	svcs := make([]*corev1.Service, 10000)
	for i := range svcs {
		svcs[i] = mkSvc(fmt.Sprint("svc", i))
		writeStatus(svcs[i], a.Assign(svcs[i], nil))
	}
	for b.Loop() {
		fresh := newAlloc(b, Config{}, pool)
		for _, r := range fresh.AssignAll(svcs, nil) {
			if r.Changed {
				b.Fatalf("%s changed", r.Key)
			}
		}
	}
}
