package tests

import (
	"context"
	"fmt"
	"testing"

	"github.com/bgplb/bgplb/conformance/suite"
)

// D-symmetric (DatapathSymmetricReturn): a client on the nodes' own subnet, routing VIPs
// via the router, reaches the VIP and every reply comes back through the router, none
// straight from the node.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "DatapathSymmetricReturn",
		ID:        "D-symmetric",
		Description: "a client on the nodes' own subnet, routing VIPs via the router, reaches the VIP and " +
			"every reply comes back through the router, none straight from the node",
		Needs:    []suite.Adapter{suite.AdapterSubnetClient},
		Profile:  "LB-DATAPATH",
		Features: []suite.Feature{suite.FeatureSymmetricReturn, suite.FeatureSourcePreserve},
		Test:     testSymmetricReturn,
	})
}

func testSymmetricReturn(t *testing.T, s *suite.Suite) {
	if s.SubnetClient == nil {
		t.Skip("this environment has no client on the nodes' subnet (Suite.SubnetClient)")
	}
	ctx := context.Background()
	ns := s.Namespace(t, "conf-symmetric")
	d := s.Backend(t, ns, "sym", s.NodeName(1), 1)
	s.LBService(t, ns, "sym", "sym", suite.WithLocal)
	vip := s.WaitIngress(t, ns, "sym")
	s.WaitPods(t, ns, d, 1)
	s.EventuallyNextHops(t, vip, s.NodeAddrs(s.NodeName(1)))
	c := s.SubnetClient
	get := func(path string) (string, error) {
		return suite.HTTPGetFrom(ctx, c, s.Timeouts.Request, vip, 80, path)
	}
	suite.Eventually(t, s.Timeouts.Converge, "first answer from "+vip.String()+" to the fabric client", func() error {
		_, err := get("/hostname")
		return err
	})
	const requests = 20
	via, direct, err := c.CountReplies(ctx, vip, func() error {
		for i := 0; i < requests; i++ {
			ip, err := get("/clientip")
			if err != nil {
				return fmt.Errorf("request %d: %w", i, err)
			}
			if ip != c.Address().String() {
				return fmt.Errorf("request %d: /clientip = %q, want the fabric client's %s", i, ip, c.Address())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("replies via the router: %d packets, straight from elsewhere: %d", via, direct)
	if direct != 0 {
		t.Errorf("%d reply packets bypassed the router (asymmetric return path)", direct)
	}
	if via < requests*2 {
		t.Errorf("only %d reply packets came through the router for %d requests", via, requests)
	}
}
