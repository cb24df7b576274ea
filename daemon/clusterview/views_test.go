package clusterview

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

func TestAnnouncingNodes(t *testing.T) {
	for _, tc := range []struct {
		msg   string
		nodes []string
		n     int
	}{
		{"announced by 1 node(s) (node1)", []string{"node1"}, 1},
		{"announced by 5 node(s) (a, b, c and 2 more); not announced by 1 node(s) whose endpoints are not datapath-ready (d: x)", []string{"a", "b", "c"}, 5},
		{"announced by 0 nodes: no node has an eligible endpoint", nil, 0},
		{"", nil, 0},
	} {
		nodes, n := announcingNodes(tc.msg)
		if !slices.Equal(nodes, tc.nodes) || n != tc.n {
			t.Errorf("announcingNodes(%q) = %v, %d; want %v, %d", tc.msg, nodes, n, tc.nodes, tc.n)
		}
	}
}

func TestPoolRanges(t *testing.T) {
	pr := rangesOf(&v1alpha1.LoadBalancerIPPool{Spec: v1alpha1.LoadBalancerIPPoolSpec{Blocks: []v1alpha1.IPBlock{
		{CIDR: "203.0.113.0/28"}, {Start: "2001:db8:ffff::10", Stop: "2001:db8:ffff::1f"}}}})
	for ip, want := range map[string]bool{
		"203.0.113.0": true, "203.0.113.15": true, "203.0.113.16": false,
		"2001:db8:ffff::10": true, "2001:db8:ffff::1f": true, "2001:db8:ffff::20": false, "::ffff:203.0.113.1": false,
	} {
		if got := pr.contains(netip.MustParseAddr(ip)); got != want {
			t.Errorf("contains(%s) = %v, want %v", ip, got, want)
		}
	}
}
