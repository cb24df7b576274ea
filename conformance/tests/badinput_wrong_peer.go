package tests

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/conformance/suite"
	lbv1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// G4 (BadInputWrongPeer): a valid BGPPeer that cannot work (unreachable address; the
// router's address with a wrong peer ASN) never becomes Established, its status or the
// nodes' BGPNodeState names the problem, and the existing peer keeps its sessions and
// routes throughout.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "BadInputWrongPeer",
		ID:        "G4",
		Description: "a valid BGPPeer that cannot work (unreachable address; the router's address with a wrong " +
			"peer ASN) never becomes Established, its status or the nodes' BGPNodeState names the problem, " +
			"and the existing peer keeps its sessions and routes throughout",
		Profile: "LB-BGP",
		// There is no bad-input feature; the assertion on the router is about sessions.
		Features: []suite.Feature{suite.FeatureNoSessionFlaps},
		Test:     testBadInputWrongPeer,
	})
}

func testBadInputWrongPeer(t *testing.T, s *suite.Suite) {
	ns := s.Namespace(t, "conf-bad-peer")
	vip := backedService(t, s, ns, "good", "web")
	allNodes := s.AllNodeAddrs()
	before := s.RequireSessions(t)

	// The peer the suite's sessions use (the lab's "lab-router").
	list, err := s.LB.BgplbV1alpha1().BGPPeers().List(ctxBG, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list peers: %v", err)
	}
	var good *lbv1.BGPPeer
	for i := range list.Items {
		if !strings.HasPrefix(list.Items[i].Name, "conf-") {
			good = &list.Items[i]
			break
		}
	}
	if good == nil {
		t.Fatalf("no BGPPeer besides the suite's own: %+v", list.Items)
	}

	wrongASN := good.Spec.DeepCopy()
	wrongASN.PeerASN = good.Spec.PeerASN + 100
	unreachable := good.Spec.DeepCopy()
	unreachable.PeerAddress = unreachablePeer
	unreachable.SourceAddress = ""
	unreachable.Timers = &lbv1.BGPTimers{ConnectRetrySeconds: ptr.To[int32](2), HoldTimeSeconds: ptr.To[int32](9)}

	for _, c := range []struct {
		name string
		spec *lbv1.BGPPeerSpec
	}{
		{"conf-g4-unreachable", unreachable},
		{"conf-g4-wrong-asn", wrongASN},
	} {
		t.Logf("peer %s: %s AS %d", c.name, c.spec.PeerAddress, c.spec.PeerASN)
		p := &lbv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: c.name}, Spec: *c.spec}
		if _, err := s.LB.BgplbV1alpha1().BGPPeers().Create(ctxBG, p, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create peer %s: %v", c.name, err)
		}
		deletePeer := func() {
			if err := s.LB.BgplbV1alpha1().BGPPeers().Delete(ctxBG, c.name, metav1.DeleteOptions{}); err != nil {
				t.Logf("delete peer %s: %v", c.name, err)
			}
		}
		t.Cleanup(deletePeer)

		suite.Consistently(t, s.Timeouts.Consistently, c.name+" never Established; good peer and route undisturbed", func() error {
			if err := goodUndisturbed(s, ns, "good", vip, allNodes); err != nil {
				return err
			}
			if err := s.SessionsUnchanged(ctxBG, before); err != nil {
				return err
			}
			return notEstablished(s, c.name)
		})
		suite.Eventually(t, s.Timeouts.Converge, c.name+"'s problem is named", func() error {
			return problemNamed(s, c.name)
		})
		deletePeer()
	}
	suite.Consistently(t, s.Timeouts.Consistently/3, "good peer and route undisturbed after the bad peers are gone", func() error {
		if err := goodUndisturbed(s, ns, "good", vip, allNodes); err != nil {
			return err
		}
		return s.SessionsUnchanged(ctxBG, before)
	})
}

// notEstablished fails when any node reports the peer Established.
func notEstablished(s *suite.Suite, peer string) error {
	states, err := s.LB.BgplbV1alpha1().BGPNodeStates().List(ctxBG, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, st := range states.Items {
		for _, p := range st.Status.Peers {
			if p.Name == peer && p.State == lbv1.SessionEstablished {
				return fmt.Errorf("node %s has %s Established", st.Name, peer)
			}
		}
	}
	return nil
}

// problemNamed succeeds when the BGPPeer's conditions say it does not work (Invalid
// True, or Established False, with a message), or when every node's BGPNodeState lists
// the peer as not Established with a last error.
func problemNamed(s *suite.Suite, peer string) error {
	p, err := s.LB.BgplbV1alpha1().BGPPeers().Get(ctxBG, peer, getOpts)
	if err != nil {
		return err
	}
	if c := meta.FindStatusCondition(p.Status.Conditions, lbv1.PeerConditionInvalid); c != nil && c.Status == metav1.ConditionTrue && c.Message != "" {
		return nil
	}
	if c := meta.FindStatusCondition(p.Status.Conditions, lbv1.PeerConditionEstablished); c != nil && c.Status == metav1.ConditionFalse && c.Message != "" {
		return nil
	}
	var missing []string
	for _, n := range s.Nodes {
		st, err := s.LB.BgplbV1alpha1().BGPNodeStates().Get(ctxBG, n.Name, getOpts)
		if err != nil {
			missing = append(missing, fmt.Sprintf("%s: %v", n.Name, err))
			continue
		}
		found := false
		for _, ps := range st.Status.Peers {
			if ps.Name == peer && ps.State != lbv1.SessionEstablished && ps.LastError != "" {
				found = true
			}
		}
		if !found {
			missing = append(missing, fmt.Sprintf("%s lists %+v", n.Name, st.Status.Peers))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("peer conditions %+v; BGPNodeState without a failing entry for %s: %s",
			p.Status.Conditions, peer, strings.Join(missing, "; "))
	}
	return nil
}
