package tests

import (
	"context"
	"testing"

	"github.com/bgplb/bgplb/conformance/suite"
)

// D1 D2 (DatapathLocalTCP): ETP=Local: GET http://VIP/hostname reaches every backend on the
// announcing nodes over 1000 new connections, and /clientip returns the client's own
// address.
// D-ping (DatapathPingVIP): ICMP echo to an announced VIP is answered.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "DatapathLocalTCP",
		ID:        "D1 D2",
		Description: "ETP=Local: GET http://VIP/hostname reaches every backend on the announcing nodes " +
			"over 1000 new connections, and /clientip returns the client's own address",
		Profile:  "LB-DATAPATH",
		Features: []suite.Feature{suite.FeatureTCPViaVIP, suite.FeatureSourcePreserve},
		Test:     testDatapathLocalTCP,
	})
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName:   "DatapathPingVIP",
		ID:          "D-ping",
		Description: "ICMP echo to an announced VIP is answered",
		Profile:     "LB-DATAPATH",
		Features:    []suite.Feature{suite.FeaturePingVIP},
		Test: func(t *testing.T, s *suite.Suite) {
			ns := s.Namespace(t, "conf-ping")
			d := s.Backend(t, ns, "ping", s.NodeName(1), 1)
			s.LBService(t, ns, "ping", "ping", suite.WithLocal)
			vip := s.WaitIngress(t, ns, "ping")
			s.WaitPods(t, ns, d, 1)
			s.EventuallyNextHops(t, vip, s.NodeAddrs(s.NodeName(1)))
			suite.Eventually(t, s.Timeouts.Converge, "ping "+vip.String(), func() error {
				return s.Client.Ping(context.Background(), vip)
			})
		},
	})
}

func testDatapathLocalTCP(t *testing.T, s *suite.Suite) {
	ctx := context.Background()
	ns := s.Namespace(t, "conf-dp-tcp")
	d1 := s.Backend(t, ns, "tcp", s.NodeName(1), 2)
	d2 := s.Backend(t, ns, "tcp", s.NodeName(2), 1)
	s.LBService(t, ns, "tcp", "tcp", suite.WithLocal)
	vip := s.WaitIngress(t, ns, "tcp")
	pods := append(s.WaitPods(t, ns, d1, 2), s.WaitPods(t, ns, d2, 1)...)
	s.EventuallyNextHops(t, vip, s.NodeAddrs(s.NodeName(1), s.NodeName(2)))

	suite.Eventually(t, s.Timeouts.Converge, "first answer from "+vip.String(), func() error {
		_, err := s.HTTPGet(ctx, vip, 80, "/hostname")
		return err
	})
	got, err := s.HTTPGet(ctx, vip, 80, "/clientip")
	if err != nil {
		t.Fatal(err)
	}
	if got != s.Client.Address().String() {
		t.Fatalf("/clientip via the VIP = %q, want the client's own %s", got, s.Client.Address())
	}

	spreadRequests(t, s, vip, 1000, pods, "tcp-")
}
