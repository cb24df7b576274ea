package tests

import (
	"context"
	"fmt"
	"math"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/conformance/suite"
	lbv1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// DESIGN-4 (BGPWeightedECMP): with weightedECMP each node's link-bandwidth is proportional
// to its ready local endpoints (2:1).
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName:   "BGPWeightedECMP",
		ID:          "DESIGN-4",
		Description: "with weightedECMP each node's link-bandwidth is proportional to its ready local endpoints (2:1)",
		Profile:     "LB-BGP",
		Features:    []suite.Feature{suite.FeatureWeightedECMP, suite.FeatureETPLocal},
		Test:        testWeightedECMP,
	})
}

func testWeightedECMP(t *testing.T, s *suite.Suite) {
	ctx := context.Background()
	adv := &lbv1.BGPAdvertisement{
		ObjectMeta: metav1.ObjectMeta{Name: "conformance-weighted"},
		Spec: lbv1.BGPAdvertisementSpec{
			ServiceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{suite.WeightedLabel: "true"}},
			WeightedECMP:    true,
		},
	}
	if _, err := s.LB.BgplbV1alpha1().BGPAdvertisements().Create(ctx, adv, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create weighted advertisement: %v", err)
	}
	t.Cleanup(func() {
		_ = s.LB.BgplbV1alpha1().BGPAdvertisements().Delete(context.Background(), adv.Name, metav1.DeleteOptions{})
	})
	ns := s.Namespace(t, "conf-weighted")
	d1 := s.Backend(t, ns, "w", s.NodeName(1), 2)
	d2 := s.Backend(t, ns, "w", s.NodeName(2), 1)
	s.LBService(t, ns, "w", "w", suite.WithLocal, suite.WithLabels(map[string]string{suite.WeightedLabel: "true"}))
	vip := s.WaitIngress(t, ns, "w")
	s.WaitPods(t, ns, d1, 2)
	s.WaitPods(t, ns, d2, 1)
	s.EventuallyNextHops(t, vip, s.NodeAddrs(s.NodeName(1), s.NodeName(2)))
	n1, n2 := s.NodeAddr(s.NodeName(1)), s.NodeAddr(s.NodeName(2))
	suite.Eventually(t, s.Timeouts.Converge, "link bandwidth node1:node2 == 2:1", func() error {
		paths, err := s.Router.Paths(ctx, suite.HostPrefix(vip))
		if err != nil {
			return err
		}
		bw := map[string]float64{}
		for _, p := range paths {
			bw[p.NextHop.String()] = p.LinkBandwidth
		}
		b1, b2 := bw[n1.String()], bw[n2.String()]
		if b1 == 0 || b2 == 0 {
			return fmt.Errorf("link bandwidth missing: %v (paths %+v)", bw, paths)
		}
		if r := b1 / b2; math.Abs(r-2) > 0.02 {
			return fmt.Errorf("ratio %.3f, want 2 (%v)", r, bw)
		}
		return nil
	})
}
