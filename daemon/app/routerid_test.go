package app

import (
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestRouterID(t *testing.T) {
	node := func(annotation string, addrs ...string) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"}}
		if annotation != "" {
			n.Annotations = map[string]string{AnnotationRouterID: annotation}
		}
		for _, a := range addrs {
			n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: a})
		}
		return n
	}
	cfg := netip.MustParseAddr("198.18.255.1")
	for _, c := range []struct {
		name       string
		n          *corev1.Node
		configured netip.Addr
		want       string // "" with wantErr
		wantErr    string
	}{
		{"IPv4 InternalIP", node("", "2001:db8:f::b", "198.18.0.11"), netip.Addr{}, "198.18.0.11", ""},
		{"configured wins over the address", node("", "198.18.0.11"), cfg, "198.18.255.1", ""},
		{"annotation wins over both", node("198.18.7.7", "198.18.0.11"), cfg, "198.18.7.7", ""},
		{"IPv6-only: low 32 bits", node("", "2001:db8:f::c612:b"), netip.Addr{}, "198.18.0.11", ""},
		{"bad annotation names the node and annotation", node("2001:db8::1", "198.18.0.11"), netip.Addr{}, "", "node node1: annotation bgplb.io/router-id"},
		{"IPv6 address with zero low bits", node("", "2001:db8:f::"), netip.Addr{}, "", "no InternalIP to derive"},
		{"no address", node(""), netip.Addr{}, "", "no InternalIP to derive"},
	} {
		got, from, err := nodeRouterID(c.n, c.configured)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: err %v, want it to contain %q", c.name, err, c.wantErr)
			}
			continue
		}
		if err != nil || got.String() != c.want || from == "" {
			t.Errorf("%s: %s (from %q), %v; want %s", c.name, got, from, err, c.want)
		}
	}
}
