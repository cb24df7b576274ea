package tests

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bgplb/bgplb/conformance/suite"
)

// E3: a hard reset of every session at the router (`clear bgp *`): the sessions come
// back and the VIP's next hops are restored within T.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "BGPSessionReset",
		ID:        "E3",
		Description: "the router resets every session (clear bgp *): every node's session is re-established and " +
			"the VIP's next hops are restored within T",
		Profile:  "LB-BGP",
		Features: []suite.Feature{suite.FeatureETPCluster},
		Test:     testSessionReset,
	})
}

func testSessionReset(t *testing.T, s *suite.Suite) {
	ctx := context.Background()
	ns := s.Namespace(t, "conf-session-reset")
	vip := backedService(t, s, ns, "web", "web")
	before := s.RequireSessions(t)

	t.Log("clear every session at the router")
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.Router.ClearSessions(cctx); err != nil {
		t.Fatalf("clear sessions at %s: %v", s.Router.Name(ctx), err)
	}
	// Every session must be a new one (the reset happened) and Established again.
	suite.Eventually(t, s.Timeouts.Converge, "every session reset and Established again", func() error {
		now, err := s.EstablishedNeighbors(ctx)
		if err != nil {
			return err
		}
		for _, n := range s.Nodes {
			a := n.Addresses[0]
			nb, ok := now[a]
			if !ok {
				return fmt.Errorf("no Established session from %s (%s)", n.Name, a)
			}
			old := before[a]
			if nb.ConnectionsDropped == old.ConnectionsDropped && nb.EstablishedSince.Sub(old.EstablishedSince) < 2*time.Second {
				return fmt.Errorf("session from %s not reset yet (established since %s)", n.Name, nb.EstablishedSince)
			}
		}
		return nil
	})
	s.EventuallyNextHops(t, vip, s.AllNodeAddrs())
	took := time.Since(start)
	t.Logf("sessions and next hops back %s after the reset", took.Round(time.Millisecond))
	if took > s.Timeouts.Converge {
		t.Errorf("recovery took %s, more than T=%s", took, s.Timeouts.Converge)
	}
}
