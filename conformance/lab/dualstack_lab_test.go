//go:build lab

package lab_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/conformance/lab"
	"github.com/bgplb/bgplb/conformance/labsuite"
	"github.com/bgplb/bgplb/conformance/suite"
)

// TestLabDualStackOneSession is the dual-stack acceptance of one BGPPeer per router: in
// a 2-node dual-stack lab whose one BGPPeer lists both address families, a
// RequireDualStack Service gets an IPv4 and an IPv6 VIP; the router holds the IPv4 VIP
// with every node's IPv4 address and the IPv6 VIP with every node's IPv6 address as next
// hops, in its RIB and FIB, while its only sessions are the nodes' IPv4 ones, each
// carrying IPv6 routes; and both VIPs answer the client.
func TestLabDualStackOneSession(t *testing.T) {
	labOptions(t, "") // root and the binaries, or skip/fail as the other lab tests do
	l, s := labsuite.Start(t, labDir(t), false, func(o *lab.Options) { o.Nodes, o.IPv6 = 2, true })
	ctx := context.Background()

	peers, err := s.LB.BgplbV1alpha1().BGPPeers().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(peers.Items) != 1 || len(peers.Items[0].Spec.AddressFamilies) != 2 {
		t.Fatalf("BGPPeers %+v, want one carrying both families", peers.Items)
	}

	ns := s.Namespace(t, "dual-stack")
	d := s.Backend(t, ns, "web", s.NodeName(1), 1)
	s.WaitPods(t, ns, d, 1)
	s.LBService(t, ns, "ds", "web", func(svc *corev1.Service) {
		svc.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
		svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	})
	var vip4, vip6 netip.Addr
	suite.Eventually(t, s.Timeouts.Converge, "an IPv4 and an IPv6 VIP", func() error {
		ips := suite.IngressIPs(s.Service(t, ns, "ds"))
		vip4, vip6 = netip.Addr{}, netip.Addr{}
		for _, a := range ips {
			if a.Is4() {
				vip4 = a
			} else {
				vip6 = a
			}
		}
		if len(ips) != 2 || !vip4.IsValid() || !vip6.IsValid() {
			return fmt.Errorf("ingress %v", ips)
		}
		return nil
	})
	var nh4, nh6 []netip.Addr
	for _, n := range l.Nodes {
		nh4 = append(nh4, n.IPs[0])
		nh6 = append(nh6, n.IPs[1])
	}
	t.Logf("VIPs %s and %s; next hops %v and %v", vip4, vip6, nh4, nh6)
	s.EventuallyNextHops(t, vip4, nh4)
	s.EventuallyNextHops(t, vip6, nh6)

	// One session per node, over IPv4, and it is the one that brought the IPv6 routes.
	var raw map[string]struct {
		BGPState string `json:"bgpState"`
		AFI      map[string]struct {
			Accepted int `json:"acceptedPrefixCounter"`
		} `json:"addressFamilyInfo"`
	}
	if err := l.Router().JSON(ctx, "show bgp neighbors json", &raw); err != nil {
		t.Fatal(err)
	}
	var sessions []netip.Addr
	for addr, n := range raw {
		a, err := netip.ParseAddr(addr)
		if err != nil {
			continue // peer groups
		}
		if !a.Is4() {
			t.Errorf("router has an IPv6 neighbour %s (%s); want the nodes' IPv4 sessions only", a, n.BGPState)
			continue
		}
		if n.BGPState != "Established" {
			t.Errorf("session with %s is %s", a, n.BGPState)
		}
		if got := n.AFI["ipv6Unicast"].Accepted; got < 1 {
			t.Errorf("session with %s carries %d IPv6 routes, want the IPv6 VIP (families %v)", a, got, n.AFI)
		}
		sessions = append(sessions, a)
	}
	slices.SortFunc(sessions, netip.Addr.Compare)
	if !slices.Equal(sessions, nh4) {
		t.Errorf("router sessions %v, want one per node: %v", sessions, nh4)
	}

	for _, vip := range []netip.Addr{vip4, vip6} {
		suite.Eventually(t, s.Timeouts.Converge, "answer from "+vip.String(), func() error {
			name, err := s.HTTPGet(ctx, vip, 80, "/hostname")
			if err == nil {
				t.Logf("%s answered by %s", vip, name)
			}
			return err
		})
	}
}
