package ipam

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	v1alpha1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// TestLiveVIPSurvivesBadRequest: for each way a request can turn bad, the Service keeps
// its address (in status: Changed false), IPAllocated turns False with the reason, a new
// Service cannot take the address, a restarted allocator keeps it too, and fixing the
// request restores Allocated without an address change.
func TestLiveVIPSurvivesBadRequest(t *testing.T) {
	cases := []struct {
		name   string
		bad    svcOpt
		reason string
		msg    string
	}{
		{"requested-IP annotation typo", annot(v1alpha1.AnnotationLoadBalancerIPs, "203.0.113.O"), v1alpha1.ReasonInvalidRequest, v1alpha1.AnnotationLoadBalancerIPs},
		{"spec.loadBalancerIP typo", lbIP("203.0.113"), v1alpha1.ReasonInvalidRequest, "spec.loadBalancerIP"},
		{"pool annotation typo", annot(v1alpha1.AnnotationPool, "pool-typo"), v1alpha1.ReasonInvalidRequest, `pool "pool-typo" does not exist`},
		{"requested IP outside every pool", annot(v1alpha1.AnnotationLoadBalancerIPs, "198.51.100.7"), v1alpha1.ReasonRequestedIPUnavailable, "not in any usable pool"},
		{"requested IP held by another Service", annot(v1alpha1.AnnotationLoadBalancerIPs, "203.0.113.3"), v1alpha1.ReasonRequestedIPUnavailable, "in use by default/other"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pool := mkPool("p", 0, "203.0.113.0/29")
			a := newAlloc(t, Config{}, pool)
			other := mkSvc("other", created(0), lbIP("203.0.113.3"))
			writeStatus(other, a.Assign(other, nil))

			live := mkSvc("live", created(1))
			r := a.Assign(live, nil)
			if !r.Allocated || ipStrings(r.IPs) != "203.0.113.0" {
				t.Fatalf("initial: %+v", r)
			}
			writeStatus(live, r)

			tc.bad(live)
			r = a.Assign(live, nil)
			if r.Changed || ipStrings(r.IPs) != "203.0.113.0" || r.Allocated || r.Reason != tc.reason ||
				!strings.Contains(r.Message, tc.msg) || !strings.Contains(r.Message, "keeping 203.0.113.0") {
				t.Fatalf("bad request: want kept 203.0.113.0, Allocated false, %s mentioning %q; got %+v", tc.reason, tc.msg, r)
			}
			if c := r.Condition(1); c.Status != "False" || c.Reason != tc.reason {
				t.Fatalf("condition %+v", c)
			}
			next := mkSvc("next", created(2))
			if rn := a.Assign(next, nil); ipStrings(rn.IPs) != "203.0.113.1" {
				t.Fatalf("next Service got %v, want 203.0.113.1 (203.0.113.0 is kept)", rn.IPs)
			} else {
				writeStatus(next, rn)
			}

			// A restarted leader rebuilds the same: the kept address is claimed first.
			b := newAlloc(t, Config{}, pool)
			later := mkSvc("later", created(3))
			rs := b.AssignAll([]*corev1.Service{later, next, live, other}, nil)
			if ipStrings(rs[2].IPs) != "203.0.113.0" || rs[2].Changed || rs[2].Allocated || rs[2].Reason != tc.reason {
				t.Fatalf("after restart live: %+v", rs[2])
			}
			if ip := ipStrings(rs[0].IPs); ip == "203.0.113.0" || ip == "" {
				t.Fatalf("after restart a new Service got %q", ip)
			}

			// Fix: remove the bad part of the request.
			fixed := mkSvc("live", created(1), status("203.0.113.0"))
			for _, al := range []*Allocator{a, b} {
				rf := al.Assign(fixed, nil)
				if !rf.Allocated || rf.Changed || ipStrings(rf.IPs) != "203.0.113.0" || rf.Reason != v1alpha1.ReasonAllocated {
					t.Fatalf("fixed: %+v", rf)
				}
			}
			// Fix by requesting the address it holds: same outcome.
			same := mkSvc("live", created(1), status("203.0.113.0"), annot(v1alpha1.AnnotationLoadBalancerIPs, "203.0.113.0"))
			if rf := a.Assign(same, nil); !rf.Allocated || rf.Changed || ipStrings(rf.IPs) != "203.0.113.0" {
				t.Fatalf("fixed by requesting the held address: %+v", rf)
			}
		})
	}
}

// TestBadRequestWithoutAddress: a Service that holds nothing gets nothing for a bad request
// (no address is taken on its behalf), and one whose address left every pool loses it.
func TestBadRequestWithoutAddress(t *testing.T) {
	a := newAlloc(t, Config{}, mkPool("p", 0, "203.0.113.0/30"))
	if r := a.Assign(mkSvc("new", annot(v1alpha1.AnnotationPool, "typo")), nil); len(r.IPs) != 0 || r.Allocated || r.Reason != v1alpha1.ReasonInvalidRequest {
		t.Fatalf("new bad Service: %+v", r)
	}
	s := mkSvc("s")
	writeStatus(s, a.Assign(s, nil))
	a.SetPools([]*v1alpha1.LoadBalancerIPPool{mkPool("q", 0, "203.0.113.128/30")})
	bad := mkSvc("s", annot(v1alpha1.AnnotationPool, "typo"), status("203.0.113.0"))
	if r := a.Assign(bad, nil); len(r.IPs) != 0 || !r.Changed || r.Reason != v1alpha1.ReasonInvalidRequest {
		t.Fatalf("address outside every pool must not be kept: %+v", r)
	}
}

// TestKeptDualStackFamily: with PreferDualStack, a bad IPv6 request keeps the held IPv6
// address next to the good IPv4 one.
func TestKeptDualStackFamily(t *testing.T) {
	a := newAlloc(t, Config{}, mkPool("dual", 0, "203.0.113.0/30", "2001:db8:ffff::/126"))
	s := mkSvc("d", families(prefDual, fam4, fam6))
	r := a.Assign(s, nil)
	writeStatus(s, r)
	if ipStrings(r.IPs) != "203.0.113.0,2001:db8:ffff::" {
		t.Fatalf("initial %+v", r)
	}
	families(prefDual, fam4, fam6)(s)
	annot(v1alpha1.AnnotationLoadBalancerIPs, "2001:db8:1::1")(s)
	r = a.Assign(s, nil)
	if r.Changed || r.Allocated || r.Reason != v1alpha1.ReasonRequestedIPUnavailable || ipStrings(r.IPs) != "203.0.113.0,2001:db8:ffff::" {
		t.Fatalf("bad IPv6 request: %+v", r)
	}
}
