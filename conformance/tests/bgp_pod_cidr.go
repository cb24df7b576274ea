package tests

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/conformance/suite"
)

// C14 (BGPPodCIDRExport): each node announces its spec.podCIDRs with itself as next hop; a
// pod IP answers from the client through the router's BGP route (project extension).
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName:   "BGPPodCIDRExport",
		ID:          "C14",
		Description: "each node announces its spec.podCIDRs with itself as next hop; a pod IP answers from the client through the router's BGP route (project extension)",
		Needs:       []suite.Adapter{suite.AdapterClient},
		Profile:     "LB-BGP",
		Features:    []suite.Feature{suite.FeaturePodCIDRExport},
		Test: func(t *testing.T, s *suite.Suite) {
			ctx := context.Background()
			for _, n := range s.Nodes {
				node, err := s.Kube.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
				if err != nil {
					t.Fatalf("get node %s: %v", n.Name, err)
				}
				if len(node.Spec.PodCIDRs) == 0 {
					t.Fatalf("node %s has no spec.podCIDRs", n.Name)
				}
				for _, c := range node.Spec.PodCIDRs {
					cidr, err := netip.ParsePrefix(c)
					if err != nil {
						t.Fatalf("node %s spec.podCIDRs %q: %v", n.Name, c, err)
					}
					var want []netip.Addr
					for _, a := range n.Addresses {
						if a.Is4() == cidr.Addr().Is4() {
							want = append(want, a)
						}
					}
					if len(want) == 0 {
						continue // no session of that family
					}
					s.EventuallyPrefixNextHops(t, cidr, want)
				}
			}
			ns := s.Namespace(t, "conf-pod-cidr")
			name := s.Backend(t, ns, "direct", s.NodeName(2), 1)
			pod := s.WaitPods(t, ns, name, 1)[0]
			ip, err := netip.ParseAddr(pod.Status.PodIP)
			if err != nil {
				t.Fatalf("pod %s/%s IP %q: %v", ns, pod.Name, pod.Status.PodIP, err)
			}
			suite.Eventually(t, s.Timeouts.Converge, fmt.Sprintf("GET http://%s:8080/clientip from the client", ip), func() error {
				got, err := s.HTTPGet(ctx, ip, 8080, "/clientip")
				if err != nil {
					return err
				}
				if want := s.Client.Address().String(); got != want {
					return fmt.Errorf("/clientip = %q, want %s", got, want)
				}
				return nil
			})
		},
	})
}
