package suite

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/conformance/router"
	lbv1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// WithAnnotations adds annotations to the Service.
func WithAnnotations(kv map[string]string) ServiceOption {
	return func(svc *corev1.Service) {
		if svc.Annotations == nil {
			svc.Annotations = map[string]string{}
		}
		for k, v := range kv {
			svc.Annotations[k] = v
		}
	}
}

// WithLoadBalancerIP sets the deprecated spec.loadBalancerIP.
func WithLoadBalancerIP(ip string) ServiceOption {
	return func(svc *corev1.Service) { svc.Spec.LoadBalancerIP = ip }
}

// WithPort replaces the Service's ports by one TCP port (targetPort 8080), named p<port>.
func WithPort(port int32) ServiceOption {
	return func(svc *corev1.Service) {
		svc.Spec.Ports = []corev1.ServicePort{{Name: fmt.Sprintf("p%d", port), Port: port,
			Protocol: corev1.ProtocolTCP, TargetPort: svc.Spec.Ports[0].TargetPort}}
	}
}

// ToType changes a LoadBalancer Service to type t (ClusterIP or NodePort), clearing the
// fields the API server only allows on LoadBalancer Services.
func ToType(t corev1.ServiceType) func(*corev1.Service) {
	return func(svc *corev1.Service) {
		svc.Spec.Type = t
		svc.Spec.LoadBalancerClass = nil
		svc.Spec.LoadBalancerIP = ""
		svc.Spec.LoadBalancerSourceRanges = nil
		svc.Spec.AllocateLoadBalancerNodePorts = nil
		svc.Spec.HealthCheckNodePort = 0
		if t == corev1.ServiceTypeClusterIP {
			svc.Spec.ExternalTrafficPolicy = ""
			for i := range svc.Spec.Ports {
				svc.Spec.Ports[i].NodePort = 0
			}
		}
	}
}

// Pool creates a LoadBalancerIPPool named name with blocks and autoAssign false (so only
// Services naming it or requesting its IPs use it), applies opts, and deletes it (waiting
// until it is gone) when the test ends.
func (s *Suite) Pool(t *testing.T, name string, blocks []lbv1.IPBlock, opts ...func(*lbv1.LoadBalancerIPPool)) *lbv1.LoadBalancerIPPool {
	t.Helper()
	p := &lbv1.LoadBalancerIPPool{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"bgplb.io/conformance": "true"}},
		Spec: lbv1.LoadBalancerIPPoolSpec{Blocks: blocks, AutoAssign: new(bool)}}
	for _, o := range opts {
		o(p)
	}
	out, err := s.LB.BgplbV1alpha1().LoadBalancerIPPools().Create(context.Background(), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pool %s: %v", name, err)
	}
	t.Cleanup(func() { s.DeletePool(t, name) })
	return out
}

// DeletePool deletes the pool and waits until it is gone (no error when it already is).
func (s *Suite) DeletePool(t *testing.T, name string) {
	t.Helper()
	ctx := context.Background()
	pools := s.LB.BgplbV1alpha1().LoadBalancerIPPools()
	if err := pools.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("delete pool %s: %v", name, err)
		return
	}
	Eventually(t, 30*time.Second, "pool "+name+" gone", func() error {
		if _, err := pools.Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there (%v)", err)
		}
		return nil
	})
}

// UpdatePool applies mutate to the current pool and updates it, retrying on conflicts.
func (s *Suite) UpdatePool(t *testing.T, name string, mutate func(*lbv1.LoadBalancerIPPool)) {
	t.Helper()
	pools := s.LB.BgplbV1alpha1().LoadBalancerIPPools()
	Eventually(t, 10*time.Second, "update pool "+name, func() error {
		p, err := pools.Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		mutate(p)
		_, err = pools.Update(context.Background(), p, metav1.UpdateOptions{})
		return err
	})
}

// WaitPoolCondition waits until the pool's condition typ has status st, and returns it.
func (s *Suite) WaitPoolCondition(t *testing.T, name, typ string, st metav1.ConditionStatus) metav1.Condition {
	t.Helper()
	var got metav1.Condition
	Eventually(t, s.Timeouts.Converge, fmt.Sprintf("pool %s condition %s=%s", name, typ, st), func() error {
		p, err := s.LB.BgplbV1alpha1().LoadBalancerIPPools().Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		c := meta.FindStatusCondition(p.Status.Conditions, typ)
		if c == nil {
			return fmt.Errorf("no %s condition (conditions %+v)", typ, p.Status.Conditions)
		}
		if c.Status != st {
			return fmt.Errorf("%s=%s reason %s: %s", typ, c.Status, c.Reason, c.Message)
		}
		got = *c
		return nil
	})
	return got
}

// AddrPools returns the names of the pools with a block containing ip.
func (s *Suite) AddrPools(ctx context.Context, ip netip.Addr) ([]string, error) {
	list, err := s.LB.BgplbV1alpha1().LoadBalancerIPPools().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list pools: %w", err)
	}
	var out []string
	for _, p := range list.Items {
		for _, b := range p.Spec.Blocks {
			if BlockContains(b, ip) {
				out = append(out, p.Name)
				break
			}
		}
	}
	return out, nil
}

// BlockContains reports whether the pool block b holds ip (false for a malformed block).
func BlockContains(b lbv1.IPBlock, ip netip.Addr) bool {
	if b.CIDR != "" {
		p, err := netip.ParsePrefix(b.CIDR)
		return err == nil && p.Contains(ip)
	}
	start, err1 := netip.ParseAddr(b.Start)
	stop, err2 := netip.ParseAddr(b.Stop)
	return err1 == nil && err2 == nil && start.BitLen() == ip.BitLen() && start.Compare(ip) <= 0 && ip.Compare(stop) <= 0
}

// RequireNoPool fails the test when ip is inside any pool: tests that request an IP
// "outside every pool" check their premise with it.
func (s *Suite) RequireNoPool(t *testing.T, ip netip.Addr) {
	t.Helper()
	pools, err := s.AddrPools(context.Background(), ip)
	if err != nil {
		t.Fatal(err)
	}
	if len(pools) > 0 {
		t.Fatalf("premise broken: %s is inside pool(s) %v", ip, pools)
	}
}

// Service returns the current Service.
func (s *Suite) Service(t *testing.T, ns, name string) *corev1.Service {
	t.Helper()
	svc, err := s.Kube.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get service %s/%s: %v", ns, name, err)
	}
	return svc
}

// DeleteService deletes the Service.
func (s *Suite) DeleteService(t *testing.T, ns, name string) {
	t.Helper()
	if err := s.Kube.CoreV1().Services(ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete service %s/%s: %v", ns, name, err)
	}
}

// IngressIPs returns the IPs of the Service's status.loadBalancer.ingress.
func IngressIPs(svc *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(ing.IP); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// WaitIngressIs waits until the Service's ingress IPs are exactly want (nil: no ingress).
func (s *Suite) WaitIngressIs(t *testing.T, ns, name string, want ...netip.Addr) {
	t.Helper()
	Eventually(t, s.Timeouts.Converge, fmt.Sprintf("ingress of %s/%s == %v", ns, name, want), func() error {
		svc, err := s.Kube.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got := IngressIPs(svc); !slices.Equal(got, want) || len(svc.Status.LoadBalancer.Ingress) != len(want) {
			return fmt.Errorf("ingress %+v (conditions %+v)", svc.Status.LoadBalancer.Ingress, svc.Status.Conditions)
		}
		return nil
	})
}

// ConsistentlyNoIngress asserts the Service has no ingress for d.
func (s *Suite) ConsistentlyNoIngress(t *testing.T, ns, name string, d time.Duration) {
	t.Helper()
	Consistently(t, d, fmt.Sprintf("no ingress on %s/%s", ns, name), func() error {
		svc, err := s.Kube.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(svc.Status.LoadBalancer.Ingress) > 0 {
			return fmt.Errorf("ingress %+v", svc.Status.LoadBalancer.Ingress)
		}
		return nil
	})
}

// WaitAllocCondition waits until the Service's bgplb.io/IPAllocated condition has status
// st (any status when st is empty) and, if reason is not empty, that reason; it returns
// the condition.
func (s *Suite) WaitAllocCondition(t *testing.T, ns, name string, st metav1.ConditionStatus, reason string) metav1.Condition {
	t.Helper()
	var got metav1.Condition
	Eventually(t, s.Timeouts.Converge, fmt.Sprintf("%s on %s/%s is %s/%s", lbv1.ConditionIPAllocated, ns, name, st, reason), func() error {
		svc, err := s.Kube.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		c := meta.FindStatusCondition(svc.Status.Conditions, lbv1.ConditionIPAllocated)
		if c == nil {
			return fmt.Errorf("no condition (conditions %+v)", svc.Status.Conditions)
		}
		if (st != "" && c.Status != st) || (reason != "" && c.Reason != reason) {
			return fmt.Errorf("condition is %s/%s: %s", c.Status, c.Reason, c.Message)
		}
		got = *c
		return nil
	})
	return got
}

// WaitServiceEvent waits for an event on the Service with the given reason and returns it.
func (s *Suite) WaitServiceEvent(t *testing.T, ns, name, reason string) corev1.Event {
	t.Helper()
	var got corev1.Event
	Eventually(t, s.Timeouts.Converge, fmt.Sprintf("event %s on %s/%s", reason, ns, name), func() error {
		evs, err := s.Kube.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return err
		}
		var seen []string
		for _, e := range evs.Items {
			if e.InvolvedObject.Kind != "Service" || e.InvolvedObject.Name != name {
				continue
			}
			if e.Reason == reason {
				got = e
				return nil
			}
			seen = append(seen, e.Reason)
		}
		return fmt.Errorf("events seen: %v", seen)
	})
	return got
}

// AllIngressIPs lists every Service in the cluster and returns, for each ingress IP, the
// Services (namespace/name) holding it and whether each has a sharing key.
func (s *Suite) AllIngressIPs(ctx context.Context) (map[netip.Addr][]string, error) {
	list, err := s.Kube.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	out := map[netip.Addr][]string{}
	for _, svc := range list.Items {
		key := svc.Namespace + "/" + svc.Name
		if k := svc.Annotations[lbv1.AnnotationSharingKey]; k != "" {
			key += " (sharing-key " + k + ")"
		}
		for _, ip := range IngressIPs(&svc) {
			out[ip] = append(out[ip], key)
		}
	}
	return out, nil
}

// IngressUnique fails when an ingress IP is held by two Services of which at least one
// has no sharing key.
func (s *Suite) IngressUnique(ctx context.Context) error {
	all, err := s.AllIngressIPs(ctx)
	if err != nil {
		return err
	}
	var dups []string
	for ip, holders := range all {
		if len(holders) < 2 {
			continue
		}
		for _, h := range holders {
			if !strings.Contains(h, "(sharing-key ") {
				dups = append(dups, fmt.Sprintf("%s held by %v", ip, holders))
				break
			}
		}
	}
	if len(dups) > 0 {
		slices.Sort(dups)
		return fmt.Errorf("IP assigned twice: %s", strings.Join(dups, "; "))
	}
	return nil
}

// ExpectInvalid fails the test unless err is an API "Invalid" error whose message names
// field (e.g. "spec.blocks[0].cidr").
func ExpectInvalid(t *testing.T, what string, err error, field string) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s: accepted by the API server, want rejected naming %s", what, field)
	case !apierrors.IsInvalid(err):
		t.Errorf("%s: error is not Invalid (422): %v", what, err)
	case !strings.Contains(err.Error(), field):
		t.Errorf("%s: rejected, but the message does not name %s: %v", what, field, err)
	default:
		t.Logf("%s: rejected: %v", what, err)
	}
}

// EstablishedNeighbors returns the router's Established sessions by address.
func (s *Suite) EstablishedNeighbors(ctx context.Context) (map[netip.Addr]router.Neighbor, error) {
	ns, err := s.Router.Neighbors(ctx)
	if err != nil {
		return nil, fmt.Errorf("router neighbors: %w", err)
	}
	out := map[netip.Addr]router.Neighbor{}
	for _, n := range ns {
		if n.State == "Established" {
			out[n.Address] = n
		}
	}
	return out, nil
}

// establishedJitter is how much a router's reported "established since" may move without
// the session having been reset: FRR derives bgpTimerUpEstablishedEpoch from the wall
// clock minus the monotonic uptime at each query, so it moves by ±1 s between queries.
const establishedJitter = 2 * time.Second

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// SessionsUnchanged reports how the router's Established sessions differ from before
// (nil when every session of before is still Established since the same time, within
// establishedJitter, with the same connectionsDropped).
func (s *Suite) SessionsUnchanged(ctx context.Context, before map[netip.Addr]router.Neighbor) error {
	now, err := s.EstablishedNeighbors(ctx)
	if err != nil {
		return err
	}
	var diffs []string
	for a, b := range before {
		n, ok := now[a]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s no longer Established", a))
		case absDuration(n.EstablishedSince.Sub(b.EstablishedSince)) > establishedJitter:
			diffs = append(diffs, fmt.Sprintf("%s re-established (since %s, was %s)", a, n.EstablishedSince, b.EstablishedSince))
		case n.ConnectionsDropped != b.ConnectionsDropped:
			diffs = append(diffs, fmt.Sprintf("%s connectionsDropped %d → %d", a, b.ConnectionsDropped, n.ConnectionsDropped))
		}
	}
	if len(diffs) > 0 {
		slices.Sort(diffs)
		return fmt.Errorf("sessions changed: %s", strings.Join(diffs, "; "))
	}
	return nil
}

// RequireSessions returns the router's Established sessions and fails the test unless
// every node has one.
func (s *Suite) RequireSessions(t *testing.T) map[netip.Addr]router.Neighbor {
	t.Helper()
	var got map[netip.Addr]router.Neighbor
	Eventually(t, s.Timeouts.Converge, "a session from every node", func() error {
		var err error
		got, err = s.EstablishedNeighbors(context.Background())
		if err != nil {
			return err
		}
		for _, n := range s.Nodes {
			if _, ok := got[n.Addresses[0]]; !ok {
				return fmt.Errorf("no Established session from %s (%s); have %v", n.Name, n.Addresses[0], got)
			}
		}
		return nil
	})
	return got
}
