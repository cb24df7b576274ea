package tests

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/conformance/suite"
)

// C8 (and A6's first case): an IPv6 VIP is advertised as a /128 with each eligible
// node's global IPv6 address as its next hop; a RequireDualStack Service gets one IPv4
// and one IPv6 ingress, and both are advertised and answer.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "BGPIPv6VIP",
		ID:        "C8 A6",
		Description: "an IPv6-only Service's VIP is a /128 at the router with every node's global IPv6 address " +
			"as a next hop; a RequireDualStack Service gets one IPv4 and one IPv6 VIP, both advertised and both answering",
		Needs:    []suite.Adapter{suite.AdapterClient},
		Profile:  "LB-IPAM",
		Features: []suite.Feature{suite.FeatureIPv6, suite.FeatureDualStack},
		Test:     testIPv6VIP,
	})
}

// v6NodeAddrs returns every node's first global IPv6 address, sorted.
func v6NodeAddrs(t *testing.T, s *suite.Suite) []netip.Addr {
	t.Helper()
	var out []netip.Addr
	for _, n := range s.Nodes {
		i := slices.IndexFunc(n.Addresses, func(a netip.Addr) bool { return a.Is6() && a.IsGlobalUnicast() })
		if i < 0 {
			t.Fatalf("node %s has no global IPv6 address: %v", n.Name, n.Addresses)
		}
		out = append(out, n.Addresses[i])
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// waitIngressIPs waits until the Service has exactly n ingress IPs and returns them.
func waitIngressIPs(t *testing.T, s *suite.Suite, ns, name string, n int) []netip.Addr {
	t.Helper()
	var ips []netip.Addr
	suite.Eventually(t, s.Timeouts.Converge, fmt.Sprintf("%d ingress IPs of %s/%s", n, ns, name), func() error {
		svc := s.Service(t, ns, name)
		ips = suite.IngressIPs(svc)
		if len(ips) != n {
			return fmt.Errorf("ingress %v (conditions %v)", svc.Status.LoadBalancer.Ingress, svc.Status.Conditions)
		}
		return nil
	})
	return ips
}

func testIPv6VIP(t *testing.T, s *suite.Suite) {
	ctx := context.Background()
	ns := s.Namespace(t, "conf-ipv6")
	d := s.Backend(t, ns, "web", s.NodeName(1), 1)
	s.WaitPods(t, ns, d, 1)
	nh6 := v6NodeAddrs(t, s)

	t.Log("IPv6 only: a /128 with every node's IPv6 address as next hop")
	s.LBService(t, ns, "v6", "web", func(svc *corev1.Service) {
		svc.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicySingleStack)
		svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
	})
	v6 := waitIngressIPs(t, s, ns, "v6", 1)[0]
	if !v6.Is6() {
		t.Fatalf("the IPv6-only Service got %s", v6)
	}
	s.EventuallyNextHops(t, v6, nh6)

	t.Log("RequireDualStack: one VIP per family, both advertised, both answering")
	s.LBService(t, ns, "ds", "web", func(svc *corev1.Service) {
		svc.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
		svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	})
	ds := waitIngressIPs(t, s, ns, "ds", 2)
	var got4, got6 netip.Addr
	for _, a := range ds {
		if a.Is4() {
			got4 = a
		} else {
			got6 = a
		}
	}
	if !got4.IsValid() || !got6.IsValid() {
		t.Fatalf("RequireDualStack got %v, want one IPv4 and one IPv6", ds)
	}
	s.EventuallyNextHops(t, got4, s.AllNodeAddrs())
	s.EventuallyNextHops(t, got6, nh6)
	for _, vip := range []netip.Addr{got4, got6, v6} {
		suite.Eventually(t, s.Timeouts.Converge, "answer from "+vip.String(), func() error {
			name, err := s.HTTPGet(ctx, vip, 80, "/hostname")
			if err == nil && name != "" {
				t.Logf("%s answered by %s", vip, name)
			}
			return err
		})
	}
}
