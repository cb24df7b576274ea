package ipam

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	v1alpha1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

const (
	reqDual  = corev1.IPFamilyPolicyRequireDualStack
	prefDual = corev1.IPFamilyPolicyPreferDualStack
	single   = corev1.IPFamilyPolicySingleStack
	fam4     = corev1.IPv4Protocol
	fam6     = corev1.IPv6Protocol
)

// step assigns one Service (or releases it when release is set) and checks the result.
type step struct {
	svc      *corev1.Service
	ns       labels.Set
	release  bool
	wantIPs  string // comma-separated, "" for none
	reason   string // "" means Allocated
	msg      string // substring of the message
	notOurs  bool
	poolsSet []*v1alpha1.LoadBalancerIPPool // when non-nil: SetPools before this step
}

func TestAssign(t *testing.T) {
	v4pool := mkPool("v4", 0, "203.0.113.0/29")
	dual := mkPool("dual", 0, "203.0.113.0/30", "2001:db8:ffff::/126")
	tests := []struct {
		name  string
		cfg   Config
		pools []*v1alpha1.LoadBalancerIPPool
		steps []step
	}{
		{
			name:  "basic: lowest free address of the oldest pool, ipMode VIP",
			pools: []*v1alpha1.LoadBalancerIPPool{mkPool("young", 10, "203.0.113.128/30"), v4pool},
			steps: []step{
				{svc: mkSvc("a"), wantIPs: "203.0.113.0", msg: "pool v4"},
				{svc: mkSvc("b"), wantIPs: "203.0.113.1"},
			},
		},
		{
			name: "priority: a higher-priority pool first even when younger, then the next by priority, equal ones oldest first",
			pools: []*v1alpha1.LoadBalancerIPPool{
				mkPool("old", 0, "203.0.113.0/31"),
				withPoolOpts(mkPool("preferred", 20, "203.0.113.64/31"), priority(10)),
				mkPool("older-equal", -5, "203.0.113.128/31"),
			},
			steps: []step{
				{svc: mkSvc("a"), wantIPs: "203.0.113.64", msg: "pool preferred"},
				{svc: mkSvc("b"), wantIPs: "203.0.113.65"},
				{svc: mkSvc("c"), wantIPs: "203.0.113.128", msg: "pool older-equal"},
			},
		},
		{
			name:  "class: foreign, class-less without and with --default-class, non-LB types",
			pools: []*v1alpha1.LoadBalancerIPPool{v4pool},
			steps: []step{
				{svc: mkSvc("foreign", class("example.com/internal-vip")), notOurs: true, reason: v1alpha1.ReasonNotOurClass},
				{svc: mkSvc("nil", class("")), notOurs: true, reason: v1alpha1.ReasonNotOurClass},
				{svc: mkSvc("cip", svcType(corev1.ServiceTypeClusterIP)), notOurs: true, reason: v1alpha1.ReasonNotLoadBalancer},
				{svc: mkSvc("np", svcType(corev1.ServiceTypeNodePort)), notOurs: true, reason: v1alpha1.ReasonNotLoadBalancer},
				{svc: mkSvc("ours"), wantIPs: "203.0.113.0"},
			},
		},
		{
			name:  "default class claims class-less Services, still not foreign ones",
			cfg:   Config{DefaultClass: true},
			pools: []*v1alpha1.LoadBalancerIPPool{v4pool},
			steps: []step{
				{svc: mkSvc("nil", class("")), wantIPs: "203.0.113.0"},
				{svc: mkSvc("foreign", class("example.com/x")), notOurs: true, reason: v1alpha1.ReasonNotOurClass},
			},
		},
		{
			name:  "custom class",
			cfg:   Config{Class: "example.com/mine"},
			pools: []*v1alpha1.LoadBalancerIPPool{v4pool},
			steps: []step{
				{svc: mkSvc("default-class"), notOurs: true, reason: v1alpha1.ReasonNotOurClass},
				{svc: mkSvc("mine", class("example.com/mine")), wantIPs: "203.0.113.0"},
			},
		},
		{
			name:  "avoidBuggyIPs skips .0 and .255",
			pools: []*v1alpha1.LoadBalancerIPPool{withPoolOpts(mkPool("p", 0, "203.0.113.254-203.0.114.1"), avoidBuggy)},
			steps: []step{
				{svc: mkSvc("a"), wantIPs: "203.0.113.254"},
				{svc: mkSvc("b"), wantIPs: "203.0.114.1"},
				{svc: mkSvc("c"), reason: v1alpha1.ReasonPoolExhausted},
				{svc: mkSvc("d", lbIP("203.0.114.0")), reason: v1alpha1.ReasonRequestedIPUnavailable, msg: "avoidBuggyIPs"},
			},
		},
		{
			name:  "exhaustion and release on delete, type change and class change",
			pools: []*v1alpha1.LoadBalancerIPPool{mkPool("one", 0, "203.0.113.7/32")},
			steps: []step{
				{svc: mkSvc("a"), wantIPs: "203.0.113.7"},
				{svc: mkSvc("b"), reason: v1alpha1.ReasonPoolExhausted, msg: "no free IPv4 address in pool(s) one"},
				{svc: mkSvc("a"), release: true},
				{svc: mkSvc("b"), wantIPs: "203.0.113.7"},
				{svc: mkSvc("b", svcType(corev1.ServiceTypeClusterIP)), notOurs: true, reason: v1alpha1.ReasonNotLoadBalancer},
				{svc: mkSvc("c"), wantIPs: "203.0.113.7"},
				{svc: mkSvc("c", class("example.com/other")), notOurs: true, reason: v1alpha1.ReasonNotOurClass},
				{svc: mkSvc("d"), wantIPs: "203.0.113.7"},
			},
		},
		{
			name:  "specific IP: spec.loadBalancerIP and annotation",
			pools: []*v1alpha1.LoadBalancerIPPool{dual},
			steps: []step{
				{svc: mkSvc("a", lbIP("203.0.113.2")), wantIPs: "203.0.113.2"},
				{svc: mkSvc("b", lbIP("203.0.113.2")), reason: v1alpha1.ReasonRequestedIPUnavailable, msg: "in use by default/a"},
				{svc: mkSvc("c", lbIP("198.51.100.7")), reason: v1alpha1.ReasonRequestedIPUnavailable, msg: "not in any usable pool"},
				{svc: mkSvc("d", annot(v1alpha1.AnnotationLoadBalancerIPs, "203.0.113.3,2001:db8:ffff::2"), families(reqDual, fam4, fam6)),
					wantIPs: "203.0.113.3,2001:db8:ffff::2"},
				{svc: mkSvc("e", annot(v1alpha1.AnnotationLoadBalancerIPs, "203.0.113.1"), lbIP("203.0.113.1")), wantIPs: "203.0.113.1"},
			},
		},
		{
			name:  "bad requests are InvalidRequest naming the field (G5)",
			pools: []*v1alpha1.LoadBalancerIPPool{dual},
			steps: []step{
				{svc: mkSvc("malformed", lbIP("203.0.113.300")), reason: v1alpha1.ReasonInvalidRequest, msg: "spec.loadBalancerIP"},
				{svc: mkSvc("malformed-annot", annot(v1alpha1.AnnotationLoadBalancerIPs, "203.0.113.1,,")), reason: v1alpha1.ReasonInvalidRequest, msg: v1alpha1.AnnotationLoadBalancerIPs},
				{svc: mkSvc("two-v4", annot(v1alpha1.AnnotationLoadBalancerIPs, "203.0.113.1,203.0.113.2")), reason: v1alpha1.ReasonInvalidRequest, msg: "two IPv4 addresses"},
				{svc: mkSvc("wrong-family", lbIP("2001:db8:ffff::1")), reason: v1alpha1.ReasonInvalidRequest, msg: "requested IPv6 address"},
				{svc: mkSvc("disagree", lbIP("203.0.113.1"), annot(v1alpha1.AnnotationLoadBalancerIPs, "203.0.113.2")), reason: v1alpha1.ReasonInvalidRequest, msg: "disagrees"},
				{svc: mkSvc("unknown-pool", annot(v1alpha1.AnnotationPool, "nope")), reason: v1alpha1.ReasonInvalidRequest, msg: `pool "nope" does not exist`},
				{svc: mkSvc("zone", lbIP("fe80::1%eth0"), families(single, fam6)), reason: v1alpha1.ReasonInvalidRequest, msg: "spec.loadBalancerIP"},
				// Others are unaffected: the first free address is still handed out.
				{svc: mkSvc("good"), wantIPs: "203.0.113.0"},
			},
		},
		{
			name: "pool annotation and autoAssign false",
			pools: []*v1alpha1.LoadBalancerIPPool{
				withPoolOpts(mkPool("manual", 0, "203.0.113.16/30"), noAuto),
				mkPool("auto", 1, "203.0.113.32/30"),
			},
			steps: []step{
				{svc: mkSvc("a"), wantIPs: "203.0.113.32"},
				{svc: mkSvc("b", annot(v1alpha1.AnnotationPool, "manual")), wantIPs: "203.0.113.16", msg: "pool manual"},
				{svc: mkSvc("c", lbIP("203.0.113.18")), wantIPs: "203.0.113.18"},
				{svc: mkSvc("d", annot(v1alpha1.AnnotationPool, "auto"), lbIP("203.0.113.17")), reason: v1alpha1.ReasonRequestedIPUnavailable, msg: "names pool auto"},
			},
		},
		{
			name:  "autoAssign false only: Services without a request get NoPool",
			pools: []*v1alpha1.LoadBalancerIPPool{withPoolOpts(mkPool("manual", 0, "203.0.113.16/30"), noAuto)},
			steps: []step{{svc: mkSvc("a"), reason: v1alpha1.ReasonNoPool, msg: "autoAssign"}},
		},
		{
			name:  "disabled pool keeps assigned addresses, hands out none",
			pools: []*v1alpha1.LoadBalancerIPPool{withPoolOpts(mkPool("p", 0, "203.0.113.0/30"), disabled)},
			steps: []step{
				{svc: mkSvc("kept", status("203.0.113.1")), wantIPs: "203.0.113.1"},
				{svc: mkSvc("new"), reason: v1alpha1.ReasonNoPool},
				{svc: mkSvc("req", lbIP("203.0.113.2")), reason: v1alpha1.ReasonRequestedIPUnavailable, msg: "disabled"},
				{svc: mkSvc("named", annot(v1alpha1.AnnotationPool, "p")), reason: v1alpha1.ReasonNoPool, msg: "disabled"},
			},
		},
		{
			name: "service and namespace selectors",
			pools: []*v1alpha1.LoadBalancerIPPool{
				withPoolOpts(mkPool("team-a", 0, "203.0.113.16/30"), svcSelector("team", "a")),
				withPoolOpts(mkPool("prod", 1, "203.0.113.32/30"), nsSelector("env", "prod")),
			},
			steps: []step{
				{svc: mkSvc("x"), reason: v1alpha1.ReasonNoPool},
				{svc: mkSvc("y", label("team", "a")), wantIPs: "203.0.113.16"},
				{svc: mkSvc("shop/z"), ns: labels.Set{"env": "prod"}, wantIPs: "203.0.113.32"},
				{svc: mkSvc("w", lbIP("203.0.113.17")), reason: v1alpha1.ReasonRequestedIPUnavailable, msg: "does not select"},
				{svc: mkSvc("y", status("203.0.113.16")), reason: v1alpha1.ReasonNoPool}, // label removed: loses the address
			},
		},
		{
			name:  "dual-stack policies (A6)",
			pools: []*v1alpha1.LoadBalancerIPPool{dual},
			steps: []step{
				{svc: mkSvc("req", families(reqDual, fam4, fam6)), wantIPs: "203.0.113.0,2001:db8:ffff::"},
				{svc: mkSvc("req6first", families(reqDual, fam6, fam4)), wantIPs: "2001:db8:ffff::1,203.0.113.1"},
				{svc: mkSvc("pref", families(prefDual, fam4, fam6)), wantIPs: "203.0.113.2,2001:db8:ffff::2"},
				{svc: mkSvc("v6", families(single, fam6)), wantIPs: "2001:db8:ffff::3"},
			},
		},
		{
			name:  "dual-stack with a v4-only pool",
			pools: []*v1alpha1.LoadBalancerIPPool{v4pool},
			steps: []step{
				{svc: mkSvc("pref", families(prefDual, fam4, fam6)), wantIPs: "203.0.113.0", msg: "no IPv6 address"},
				{svc: mkSvc("req", families(reqDual, fam4, fam6)), reason: v1alpha1.ReasonNoPool, msg: "IPv6"},
				// The failed RequireDualStack held nothing: the next Service gets .1.
				{svc: mkSvc("next"), wantIPs: "203.0.113.1"},
				{svc: mkSvc("v6", families(single, fam6)), reason: v1alpha1.ReasonNoPool},
				// Changing the policy so it cannot be satisfied releases the address.
				{svc: mkSvc("pref", families(reqDual, fam4, fam6), status("203.0.113.0")), reason: v1alpha1.ReasonNoPool},
				{svc: mkSvc("after"), wantIPs: "203.0.113.0"},
			},
		},
		{
			name:  "sharing key (A7, decision 6)",
			pools: []*v1alpha1.LoadBalancerIPPool{v4pool},
			steps: []step{
				{svc: mkSvc("web", sharing("k"), ports(80), selector("s")), wantIPs: "203.0.113.0"},
				{svc: mkSvc("dns", sharing("k"), ports(-53, 53), selector("s")), wantIPs: "203.0.113.0"},
				{svc: mkSvc("overlap", sharing("k"), ports(80), selector("s")), wantIPs: "203.0.113.1"},
				{svc: mkSvc("other-key", sharing("j"), ports(443)), wantIPs: "203.0.113.2"},
				{svc: mkSvc("no-key", ports(8080)), wantIPs: "203.0.113.3"},
				{svc: mkSvc("req-conflict", sharing("k"), ports(53), lbIP("203.0.113.0")), reason: v1alpha1.ReasonSharingConflict, msg: "port 53/TCP"},
				{svc: mkSvc("req-nokey", ports(9), lbIP("203.0.113.0")), reason: v1alpha1.ReasonRequestedIPUnavailable, msg: "no sharing key"},
				{svc: mkSvc("req-ok", sharing("k"), ports(22), lbIP("203.0.113.0")), wantIPs: "203.0.113.0"},
			},
		},
		{
			name:  "sharing across namespaces needs opt-in on both sides",
			pools: []*v1alpha1.LoadBalancerIPPool{v4pool},
			steps: []step{
				{svc: mkSvc("a/web", sharing("k"), ports(80)), wantIPs: "203.0.113.0"},
				{svc: mkSvc("a/dns", sharing("k"), ports(53)), wantIPs: "203.0.113.0"}, // same namespace: unchanged
				// Another namespace, same key, no opt-in: its own address.
				{svc: mkSvc("b/api", sharing("k"), ports(443)), wantIPs: "203.0.113.1"},
				// Asking for a's address: refused with the reason.
				{svc: mkSvc("b/req", sharing("k"), ports(444), lbIP("203.0.113.0")), reason: v1alpha1.ReasonSharingConflict, msg: crossNS},
				// Only this side opts in: still refused.
				{svc: mkSvc("b/req", sharing("k"), ports(444), lbIP("203.0.113.0"), annot(crossNS, "a")), reason: v1alpha1.ReasonSharingConflict, msg: crossNS},
				// Both a's Services allow b (one by name, one by *), b allows a: shared.
				{svc: mkSvc("a/web", sharing("k"), ports(80), annot(crossNS, "b, c"), status("203.0.113.0")), wantIPs: "203.0.113.0"},
				{svc: mkSvc("a/dns", sharing("k"), ports(53), annot(crossNS, "*"), status("203.0.113.0")), wantIPs: "203.0.113.0"},
				{svc: mkSvc("b/req", sharing("k"), ports(444), lbIP("203.0.113.0"), annot(crossNS, "a")), wantIPs: "203.0.113.0"},
				// A malformed list is an invalid request, never an opt-in.
				{svc: mkSvc("c/bad", sharing("k"), ports(445), annot(crossNS, "A_B")), reason: v1alpha1.ReasonInvalidRequest, msg: crossNS},
				{svc: mkSvc("c/bad", sharing("k"), ports(445), annot(crossNS, "*,a")), reason: v1alpha1.ReasonInvalidRequest, msg: "stand alone"},
			},
		},
		{
			name:  "sharing with Local needs identical selectors and the same policy",
			pools: []*v1alpha1.LoadBalancerIPPool{v4pool},
			steps: []step{
				{svc: mkSvc("a", sharing("k"), ports(80), local, selector("s")), wantIPs: "203.0.113.0"},
				{svc: mkSvc("b", sharing("k"), ports(81), local, selector("other")), wantIPs: "203.0.113.1"},
				{svc: mkSvc("c", sharing("k"), ports(82), selector("s")), wantIPs: "203.0.113.2"},
				{svc: mkSvc("d", sharing("k"), ports(83), local, selector("s")), wantIPs: "203.0.113.0"},
				{svc: mkSvc("e", sharing("k"), ports(84), local, selector("other"), lbIP("203.0.113.0")), reason: v1alpha1.ReasonSharingConflict, msg: "identical selectors"},
			},
		},
		{
			name:  "a sharer that adds an overlapping port loses the shared address",
			pools: []*v1alpha1.LoadBalancerIPPool{v4pool},
			steps: []step{
				{svc: mkSvc("a", sharing("k"), ports(80)), wantIPs: "203.0.113.0"},
				{svc: mkSvc("b", sharing("k"), ports(81)), wantIPs: "203.0.113.0"},
				{svc: mkSvc("b", sharing("k"), ports(80, 81), status("203.0.113.0")), wantIPs: "203.0.113.1"},
				{svc: mkSvc("a", sharing("k"), ports(80), status("203.0.113.0")), wantIPs: "203.0.113.0"},
			},
		},
		{
			name:  "status is kept when valid and replaced when not",
			pools: []*v1alpha1.LoadBalancerIPPool{v4pool},
			steps: []step{
				{svc: mkSvc("a", status("203.0.113.5")), wantIPs: "203.0.113.5"},
				{svc: mkSvc("b", status("198.51.100.9")), wantIPs: "203.0.113.0"},
				{svc: mkSvc("c", status("203.0.113.5")), wantIPs: "203.0.113.1"}, // held by a
			},
		},
		{
			name:  "pool shrink moves the Service (A8)",
			pools: []*v1alpha1.LoadBalancerIPPool{mkPool("p", 0, "203.0.113.0/30", "203.0.113.8/30")},
			steps: []step{
				{svc: mkSvc("a", lbIP("")), wantIPs: "203.0.113.0"},
				{poolsSet: []*v1alpha1.LoadBalancerIPPool{mkPool("p", 0, "203.0.113.8/30")}, svc: mkSvc("b"), wantIPs: "203.0.113.8"},
				{svc: mkSvc("a", status("203.0.113.0")), wantIPs: "203.0.113.9"},
				{poolsSet: []*v1alpha1.LoadBalancerIPPool{}, svc: mkSvc("a", status("203.0.113.9")), reason: v1alpha1.ReasonNoPool},
			},
		},
		{
			name: "conflicting and invalid pools are not used (G1, G2)",
			pools: []*v1alpha1.LoadBalancerIPPool{
				mkPool("older", 0, "203.0.113.0/31"),
				mkPool("newer", 1, "203.0.113.0/24"),
				mkPool("self-overlap", 2, "203.0.113.64/28", "203.0.113.70/32"),
				mkPool("bad", 3, "100.200.300.400/24"),
				mkPool("reversed", 4, "203.0.113.10-203.0.113.1"),
				mkPool("empty", 5),
			},
			steps: []step{
				{svc: mkSvc("a"), wantIPs: "203.0.113.0"},
				{svc: mkSvc("b"), wantIPs: "203.0.113.1"},
				{svc: mkSvc("c"), reason: v1alpha1.ReasonPoolExhausted},
				{svc: mkSvc("d", lbIP("203.0.113.100")), reason: v1alpha1.ReasonRequestedIPUnavailable, msg: "not in any usable pool"},
				{svc: mkSvc("e", annot(v1alpha1.AnnotationPool, "newer")), reason: v1alpha1.ReasonNoPool, msg: "conflicting"},
				{svc: mkSvc("f", annot(v1alpha1.AnnotationPool, "bad")), reason: v1alpha1.ReasonNoPool, msg: "invalid"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAlloc(t, tc.cfg, tc.pools...)
			for i, st := range tc.steps {
				if st.poolsSet != nil {
					a.SetPools(st.poolsSet)
				}
				if st.release {
					a.Release(ServiceKey(st.svc))
					if got := a.Allocation(ServiceKey(st.svc)); got != nil {
						t.Fatalf("step %d: %s still holds %v after Release", i, ServiceKey(st.svc), got)
					}
					continue
				}
				r := a.Assign(st.svc, st.ns)
				if r.Ours == st.notOurs {
					t.Fatalf("step %d %s: Ours=%v, want %v (%s: %s)", i, r.Key, r.Ours, !st.notOurs, r.Reason, r.Message)
				}
				wantReason := st.reason
				if wantReason == "" {
					wantReason = v1alpha1.ReasonAllocated
				}
				if got := ipStrings(r.IPs); got != st.wantIPs || r.Reason != wantReason {
					t.Fatalf("step %d %s: got IPs %q reason %s (%s), want %q %s", i, r.Key, got, r.Reason, r.Message, st.wantIPs, wantReason)
				}
				if r.Allocated != (wantReason == v1alpha1.ReasonAllocated) {
					t.Fatalf("step %d %s: Allocated=%v with reason %s", i, r.Key, r.Allocated, r.Reason)
				}
				if !strings.Contains(r.Message, st.msg) {
					t.Fatalf("step %d %s: message %q does not contain %q", i, r.Key, r.Message, st.msg)
				}
				if got := ipStrings(a.Allocation(r.Key)); got != st.wantIPs {
					t.Fatalf("step %d %s: allocator holds %q, result says %q", i, r.Key, got, st.wantIPs)
				}
				if r.Ours {
					for _, ing := range r.Ingress() {
						if ing.IPMode == nil || *ing.IPMode != corev1.LoadBalancerIPModeVIP || ing.Hostname != "" {
							t.Fatalf("step %d: ingress %+v is not an ipMode VIP IP entry", i, ing)
						}
					}
					c := r.Condition(3)
					wantStatus := metav1.ConditionFalse
					if r.Allocated {
						wantStatus = metav1.ConditionTrue
					}
					if c.Type != v1alpha1.ConditionIPAllocated || c.Status != wantStatus || c.Reason != r.Reason || c.ObservedGeneration != 3 {
						t.Fatalf("step %d: condition %+v", i, c)
					}
				}
			}
		})
	}
}

func TestChangedOnlyWhenStatusDiffers(t *testing.T) {
	a := newAlloc(t, Config{}, mkPool("p", 0, "203.0.113.0/30"))
	s := mkSvc("a")
	r := a.Assign(s, nil)
	if !r.Changed {
		t.Fatalf("first assignment not reported as changed: %+v", r)
	}
	writeStatus(s, r)
	if r2 := a.Assign(s, nil); r2.Changed || ipStrings(r2.IPs) != ipStrings(r.IPs) {
		t.Fatalf("re-assign after write: %+v", r2)
	}
	// Before the status write lands, a retry returns the same decision.
	s2 := mkSvc("b")
	r3 := a.Assign(s2, nil)
	r4 := a.Assign(s2, nil)
	if ipStrings(r3.IPs) != ipStrings(r4.IPs) || !r4.Changed {
		t.Fatalf("retry before write: %+v then %+v", r3, r4)
	}
	// A Service whose request becomes invalid keeps its address (keep_test.go) and
	// only its condition changes.
	bad := mkSvc("a", lbIP("nope"), status(ipStrings(r.IPs)))
	if r5 := a.Assign(bad, nil); r5.Changed || ipStrings(r5.IPs) != ipStrings(r.IPs) || r5.Allocated || r5.Reason != v1alpha1.ReasonInvalidRequest {
		t.Fatalf("invalid request with status: %+v", r5)
	}
	// A status written by someone else with ipMode Proxy or a hostname is rewritten.
	proxy := corev1.LoadBalancerIPModeProxy
	odd := mkSvc("odd")
	odd.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.2", IPMode: &proxy}}
	if r := a.Assign(odd, nil); !r.Changed || ipStrings(r.IPs) != "203.0.113.2" {
		t.Fatalf("ipMode Proxy status not rewritten: %+v", r)
	}
	// Foreign Services are never "changed", whatever their status.
	if r6 := a.Assign(mkSvc("f", class("example.com/x"), status("203.0.113.1")), nil); r6.Changed || r6.Ours {
		t.Fatalf("foreign: %+v", r6)
	}
}

func TestPoolStatus(t *testing.T) {
	a := newAlloc(t, Config{},
		withPoolOpts(mkPool("p", 0, "203.0.113.0/24", "2001:db8:ffff::/64"), avoidBuggy),
		mkPool("conflict", 1, "203.0.113.128/25"),
		mkPool("invalid", 2, "203.0.114.0/24", "203.0.114.5/32"),
		mkPool("bad-cidr", 3, "1.2.3.0/33"),
		withPoolOpts(mkPool("off", 4, "198.51.100.0/30"), disabled),
	)
	for _, name := range []string{"a", "b", "c"} {
		a.Assign(mkSvc(name, families(reqDual, fam4, fam6)), nil)
	}
	got := map[string]v1alpha1.LoadBalancerIPPoolStatus{}
	var order []string
	for _, ps := range a.Pools() {
		got[ps.Name] = ps.Status
		order = append(order, ps.Name)
	}
	if strings.Join(order, ",") != "p,conflict,invalid,bad-cidr,off" {
		t.Fatalf("pool order %v", order)
	}
	p := got["p"]
	if *p.IPv4 != (v1alpha1.PoolCounts{Total: 254, Used: 3, Free: 251}) {
		t.Errorf("p ipv4 counts %+v", *p.IPv4)
	}
	if p.IPv6.Total != 1<<63-1 || p.IPv6.Used != 3 {
		t.Errorf("p ipv6 counts %+v", *p.IPv6)
	}
	cond := func(st v1alpha1.LoadBalancerIPPoolStatus, typ string) metav1.Condition {
		for _, c := range st.Conditions {
			if c.Type == typ {
				return c
			}
		}
		t.Fatalf("no %s condition in %+v", typ, st)
		return metav1.Condition{}
	}
	checks := []struct {
		pool, typ string
		status    metav1.ConditionStatus
		msg       string
	}{
		{"p", "Ready", metav1.ConditionTrue, ""},
		{"p", "Conflicting", metav1.ConditionFalse, ""},
		{"conflict", "Conflicting", metav1.ConditionTrue, `overlaps spec.blocks[0] of older pool "p"`},
		{"conflict", "Ready", metav1.ConditionFalse, ""},
		{"invalid", "Invalid", metav1.ConditionTrue, "spec.blocks[1]: overlaps spec.blocks[0]"},
		{"bad-cidr", "Invalid", metav1.ConditionTrue, "spec.blocks[0].cidr"},
		{"off", "Ready", metav1.ConditionFalse, "disabled"},
	}
	for _, c := range checks {
		got := cond(got[c.pool], c.typ)
		if got.Status != c.status || !strings.Contains(got.Message, c.msg) || got.ObservedGeneration != 1 {
			t.Errorf("pool %s condition %s = %+v, want %s containing %q", c.pool, c.typ, got, c.status, c.msg)
		}
	}
	if c := got["conflict"].IPv4; c == nil || c.Used != 0 || c.Total != 128 {
		t.Errorf("conflicting pool counts %+v", c)
	}
}

func TestSetPoolsReportsOrphansAndKeepsThemReserved(t *testing.T) {
	a := newAlloc(t, Config{}, mkPool("p", 0, "203.0.113.0/31"))
	s := mkSvc("a")
	writeStatus(s, a.Assign(s, nil))
	orphans := a.SetPools([]*v1alpha1.LoadBalancerIPPool{mkPool("q", 0, "203.0.113.1/32")})
	if strings.Join(orphans, ",") != "default/a" {
		t.Fatalf("orphans %v", orphans)
	}
	// Pool p comes back before a is re-assigned: its address is still reserved for a.
	a.SetPools([]*v1alpha1.LoadBalancerIPPool{mkPool("p", 0, "203.0.113.0/31")})
	if r := a.Assign(mkSvc("b"), nil); ipStrings(r.IPs) != "203.0.113.1" {
		t.Fatalf("b got %v, want the address a does not hold", r.IPs)
	}
	if r := a.Assign(s, nil); ipStrings(r.IPs) != "203.0.113.0" || r.Changed {
		t.Fatalf("a: %+v", r)
	}
}

func TestInvalidSelectorMakesPoolInvalid(t *testing.T) {
	p := mkPool("p", 0, "203.0.113.0/30")
	p.Spec.ServiceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Bogus"}}}
	a := newAlloc(t, Config{}, p)
	st := a.Pools()[0].Status
	if st.Conditions[0].Type != v1alpha1.PoolConditionReady || st.Conditions[0].Status != metav1.ConditionFalse ||
		!strings.Contains(st.Conditions[0].Message, "spec.serviceSelector") {
		t.Fatalf("conditions %+v", st.Conditions)
	}
	if r := a.Assign(mkSvc("a"), nil); r.Reason != v1alpha1.ReasonNoPool {
		t.Fatalf("allocated from an invalid pool: %+v", r)
	}
}

func TestAssignAllUsesNamespaceLabels(t *testing.T) {
	a := newAlloc(t, Config{}, withPoolOpts(mkPool("prod", 0, "203.0.113.0/30"), nsSelector("env", "prod")))
	ns := map[string]labels.Set{"shop": {"env": "prod"}}
	res := a.AssignAll([]*corev1.Service{mkSvc("shop/a"), mkSvc("dev/b")}, func(n string) labels.Set { return ns[n] })
	if ipStrings(res[0].IPs) != "203.0.113.0" || res[1].Reason != v1alpha1.ReasonNoPool {
		t.Fatalf("results %+v", res)
	}
}

// TestStaleStatusDoesNotFlipBack: the controller moved a Service from W to X, but the
// informer still shows W. Neither Assign nor a resync (AssignAll) may go back to W, which
// would leave X (the API server's truth) free for someone else.
func TestStaleStatusDoesNotFlipBack(t *testing.T) {
	a := newAlloc(t, Config{}, mkPool("p", 0, "203.0.113.0/30"))
	svc := mkSvc("a", sharing("k"), ports(80))
	writeStatus(svc, a.Assign(svc, nil)) // W = .0
	// Another sharer takes port 80 first; a moves to X = .1 after its port list changes.
	other := mkSvc("b", sharing("k"), ports(81), created(-10))
	writeStatus(other, a.Assign(other, nil))
	moved := mkSvc("a", sharing("k"), ports(81), status("203.0.113.0"))
	r := a.Assign(moved, nil)
	if ipStrings(r.IPs) != "203.0.113.1" {
		t.Fatalf("a: %+v", r)
	}
	// The conflict goes away (b deleted) but the informer still shows a at W.
	a.Release("default/b")
	stale := mkSvc("a", sharing("k"), ports(81), status("203.0.113.0"))
	if r := a.Assign(stale, nil); ipStrings(r.IPs) != "203.0.113.1" || !r.Changed {
		t.Fatalf("Assign with stale status: %+v", r)
	}
	if rs := a.AssignAll([]*corev1.Service{stale}, nil); ipStrings(rs[0].IPs) != "203.0.113.1" {
		t.Fatalf("AssignAll with stale status: %+v", rs[0])
	}
}

// TestOverlapRecovery (G2): an overlapping pool is unused while it overlaps and becomes
// usable once fixed; the older pool's allocations are never disturbed.
func TestOverlapRecovery(t *testing.T) {
	old := mkPool("old", 0, "203.0.113.0/31")
	a := newAlloc(t, Config{}, old, mkPool("new", 1, "203.0.113.0/30"))
	s1 := mkSvc("a")
	writeStatus(s1, a.Assign(s1, nil))
	s2 := mkSvc("b")
	writeStatus(s2, a.Assign(s2, nil))
	if r := a.Assign(mkSvc("c"), nil); r.Reason != v1alpha1.ReasonPoolExhausted {
		t.Fatalf("c allocated from the conflicting pool: %+v", r)
	}
	a.SetPools([]*v1alpha1.LoadBalancerIPPool{old, mkPool("new", 1, "203.0.113.2/31")})
	if r := a.Assign(mkSvc("c"), nil); ipStrings(r.IPs) != "203.0.113.2" {
		t.Fatalf("c after the fix: %+v", r)
	}
	for _, s := range []*corev1.Service{s1, s2} {
		if r := a.Assign(s, nil); r.Changed {
			t.Fatalf("%s moved after the fix: %+v", r.Key, r)
		}
	}
	for _, ps := range a.Pools() {
		for _, c := range ps.Status.Conditions {
			if c.Type == v1alpha1.PoolConditionConflicting && c.Status != metav1.ConditionFalse {
				t.Fatalf("pool %s still conflicting: %+v", ps.Name, c)
			}
		}
	}
}

const crossNS = v1alpha1.AnnotationSharingCrossNamespace
