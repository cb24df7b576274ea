package tests

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/conformance/suite"
	lbv1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// vipAt returns the address n above the start of the suite's VIP range. The IPAM and
// bad-input tests put the pools they create in the upper half of the range (the base
// pool holds the lower half), each test its own sub-range:
//
//	130       A3 exhaustion          136-137  A8 pool shrink
//	144-152   G1 self-overlapping    160-175  G2 overlapping pools
//	176-179   A6 IPv4-only pool      184-187  C9 VIP change
//	188-191   A2 specific IP
//	240-247   C12 routes the router injects
//	254       an address in no pool (A2, G5); 250 is B2's foreign status
func vipAt(s *suite.Suite, n int) netip.Addr {
	a := s.VIPRange.Addr()
	for range n {
		a = a.Next()
	}
	return a
}

// cidrAt is the block vipAt(n)/bits.
func cidrAt(s *suite.Suite, n, bits int) lbv1.IPBlock {
	return lbv1.IPBlock{CIDR: netip.PrefixFrom(vipAt(s, n), bits).String()}
}

// rangeAt is the block vipAt(from)-vipAt(to).
func rangeAt(s *suite.Suite, from, to int) lbv1.IPBlock {
	return lbv1.IPBlock{Start: vipAt(s, from).String(), Stop: vipAt(s, to).String()}
}

// backedService creates one ready backend pod on node1 for app and a LoadBalancer
// Service name selecting it, waits for its ingress IP and for the router to hold it from
// every node (ETP=Cluster), and returns the IP.
func backedService(t *testing.T, s *suite.Suite, ns, name, app string, opts ...suite.ServiceOption) netip.Addr {
	t.Helper()
	d := s.Backend(t, ns, app, s.Nodes[0].Name, 1)
	s.LBService(t, ns, name, app, opts...)
	s.WaitPods(t, ns, d, 1)
	vip := s.WaitIngress(t, ns, name)
	s.EventuallyNextHops(t, vip, s.AllNodeAddrs())
	return vip
}

// sameIngress fails unless the Service's ingress is exactly want.
func sameIngress(s *suite.Suite, ns, name string, want netip.Addr) error {
	svc, err := s.Kube.CoreV1().Services(ns).Get(ctxBG, name, getOpts)
	if err != nil {
		return err
	}
	got := suite.IngressIPs(svc)
	if len(got) != 1 || got[0] != want {
		return fmt.Errorf("ingress of %s/%s is %v, was %s", ns, name, svc.Status.LoadBalancer.Ingress, want)
	}
	return nil
}

var (
	ctxBG   = context.Background()
	getOpts = metav1.GetOptions{}
)
