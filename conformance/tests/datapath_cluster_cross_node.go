package tests

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bgplb/bgplb/conformance/suite"
)

// D3: ETP=Cluster with backends on node1 only is announced from every node, and new
// connections succeed whichever node the router's ECMP hash sends them to.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "DatapathClusterCrossNode",
		ID:        "D3",
		Description: "ETP=Cluster with backends only on node1: announced from every node, and 500 new " +
			"connections through the router's ECMP all succeed and reach node1's backends",
		Profile:  "LB-DATAPATH",
		Features: []suite.Feature{suite.FeatureTCPViaVIP, suite.FeatureETPCluster},
		Test:     testDatapathClusterCrossNode,
	})
}

func testDatapathClusterCrossNode(t *testing.T, s *suite.Suite) {
	ctx := context.Background()
	ns := s.Namespace(t, "conf-dp-cross")
	d := s.Backend(t, ns, "cross", s.NodeName(1), 2)
	s.LBService(t, ns, "cross", "cross")
	vip := s.WaitIngress(t, ns, "cross")
	pods := s.WaitPods(t, ns, d, 2)
	// EventuallyNextHops checks the FIB too: every node is an ECMP next hop.
	s.EventuallyNextHops(t, vip, s.AllNodeAddrs())
	announced := time.Now()
	// The nodes without a backend forward through the kernel stack (kube-proxy), which
	// programs the VIP only once it has seen the ingress IP: a node may announce before
	// it can forward. Wait (within T) until 50 new connections in a row succeed — with
	// three ECMP next hops a node that does not forward breaks such a run almost surely —
	// and report the failures of that window; from then on no connection may fail.
	early, streak := 0, 0
	suite.Eventually(t, s.Timeouts.Converge, "50 answers in a row from "+vip.String(), func() error {
		for streak < 50 {
			if _, err := s.HTTPGet(ctx, vip, 80, "/hostname"); err != nil {
				early++
				err = fmt.Errorf("%d in a row, then %w", streak, err)
				streak = 0
				return err
			}
			streak++
		}
		return nil
	})
	t.Logf("every node forwards %s after the announcement; %d connections failed before that",
		time.Since(announced).Round(time.Millisecond), early)

	spreadRequests(t, s, vip, 500, pods, "cross-node1-")
}
