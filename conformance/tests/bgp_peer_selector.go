package tests

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/bgplb/bgplb/conformance/suite"
	lbv1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// C13 (BGPPeerSelector): a VIP whose only advertisement has a peerSelector matching no
// BGPPeer is allocated but not announced (Announced=False, NoMatchingAdvertisement);
// labelling the peer to match announces it from the node with the endpoint, removing the
// label withdraws it; no session flaps and a VIP of another advertisement stays in the
// router's FIB throughout.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "BGPPeerSelector",
		ID:        "C13",
		Description: "a VIP whose only advertisement has a peerSelector matching no BGPPeer is allocated but " +
			"not announced (Announced=False, NoMatchingAdvertisement); labelling the peer to match announces it " +
			"from the node with the endpoint, removing the label withdraws it; no session flaps and a VIP of " +
			"another advertisement stays in the router's FIB throughout",
		Profile:  "LB-BGP",
		Features: []suite.Feature{suite.FeaturePeerSelector, suite.FeatureETPLocal},
		Test:     testPeerSelector,
	})
}

const (
	// peerSelectorLabel is the BGPPeer label the test's advertisement selects.
	peerSelectorLabel = "bgplb.io/conformance-peer-selector"

	reasonAnnounced               = "Announced"
	reasonNoMatchingAdvertisement = "NoMatchingAdvertisement"
)

func testPeerSelector(t *testing.T, s *suite.Suite) {
	ctx := context.Background()
	peer, err := s.LB.BgplbV1alpha1().BGPPeers().Get(ctx, s.PeerName, getOpts)
	if err != nil {
		t.Fatalf("get BGPPeer %s: %v", s.PeerName, err)
	}
	if _, ok := peer.Labels[peerSelectorLabel]; ok {
		t.Fatalf("BGPPeer %s already has label %s (left over by an earlier run?)", s.PeerName, peerSelectorLabel)
	}
	t.Cleanup(func() {
		if err := setPeerLabel(context.Background(), s, s.PeerName, peerSelectorLabel, ""); err != nil {
			t.Errorf("restore BGPPeer %s: %v", s.PeerName, err)
		}
	})

	ns := s.Namespace(t, "conf-peer-selector")
	t.Log("a Service of the base advertisement (ETP=Cluster): every node announces it")
	dBase := s.Backend(t, ns, "base", s.NodeName(2), 1)
	s.LBService(t, ns, "base", "base")
	baseVIP := s.WaitIngress(t, ns, "base")
	s.WaitPods(t, ns, dBase, 1)
	all := s.AllNodeAddrs()
	s.EventuallyNextHops(t, baseVIP, all)
	sessions := s.RequireSessions(t)
	stopWatch := watchRouter(s, baseVIP, all)
	t.Cleanup(func() { _ = stopWatch() }) // checked below; this only stops it on an early failure

	selected := map[string]string{suite.WeightedLabel: "peer-selector"} // left out by the base advertisement
	adv := &lbv1.BGPAdvertisement{
		ObjectMeta: metav1.ObjectMeta{Name: "conformance-peer-selector"},
		Spec: lbv1.BGPAdvertisementSpec{
			ServiceSelector: &metav1.LabelSelector{MatchLabels: selected},
			PeerSelector:    &metav1.LabelSelector{MatchLabels: map[string]string{peerSelectorLabel: "true"}},
		},
	}
	if _, err := s.LB.BgplbV1alpha1().BGPAdvertisements().Create(ctx, adv, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create advertisement %s: %v", adv.Name, err)
	}
	t.Cleanup(func() {
		_ = s.LB.BgplbV1alpha1().BGPAdvertisements().Delete(context.Background(), adv.Name, metav1.DeleteOptions{})
	})

	t.Logf("peerSelector %s=true matches no BGPPeer: the VIP is allocated, never announced", peerSelectorLabel)
	d := s.Backend(t, ns, "sel", s.NodeName(1), 1)
	s.LBService(t, ns, "sel", "sel", suite.WithLocal, suite.WithLabels(selected))
	vip := s.WaitIngress(t, ns, "sel")
	s.WaitPods(t, ns, d, 1)
	cond := waitAnnounced(t, s, ns, "sel", metav1.ConditionFalse, reasonNoMatchingAdvertisement)
	t.Logf("Announced: %s: %s", cond.Reason, cond.Message)
	absent := s.Timeouts.Consistently / 3
	suite.Consistently(t, absent, fmt.Sprintf("router has no route to %s", vip), func() error {
		return routerHas(s, vip, nil)
	})

	t.Logf("label BGPPeer %s %s=true: node1 announces the VIP to it", s.PeerName, peerSelectorLabel)
	if err := setPeerLabel(ctx, s, s.PeerName, peerSelectorLabel, "true"); err != nil {
		t.Fatalf("label BGPPeer %s: %v", s.PeerName, err)
	}
	s.EventuallyNextHops(t, vip, s.NodeAddrs(s.NodeName(1)))
	cond = waitAnnounced(t, s, ns, "sel", metav1.ConditionTrue, reasonAnnounced)
	t.Logf("Announced: %s: %s", cond.Reason, cond.Message)
	if err := s.SessionsUnchanged(ctx, sessions); err != nil {
		t.Fatalf("after labelling the peer: %v", err)
	}

	t.Logf("remove the label again: the VIP is withdrawn")
	if err := setPeerLabel(ctx, s, s.PeerName, peerSelectorLabel, ""); err != nil {
		t.Fatalf("unlabel BGPPeer %s: %v", s.PeerName, err)
	}
	s.EventuallyNextHops(t, vip, nil)
	cond = waitAnnounced(t, s, ns, "sel", metav1.ConditionFalse, reasonNoMatchingAdvertisement)
	t.Logf("Announced: %s: %s", cond.Reason, cond.Message)

	if err := stopWatch(); err != nil {
		t.Fatalf("the base advertisement's VIP was disturbed: %v", err)
	}
	if err := s.SessionsUnchanged(ctx, sessions); err != nil {
		t.Fatalf("after unlabelling the peer: %v", err)
	}
}

// setPeerLabel sets label key of the BGPPeer to value, or removes it when value is empty.
func setPeerLabel(ctx context.Context, s *suite.Suite, name, key, value string) error {
	peers := s.LB.BgplbV1alpha1().BGPPeers()
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := peers.Get(ctx, name, getOpts)
		if err != nil {
			return err
		}
		if _, ok := p.Labels[key]; !ok && value == "" {
			return nil
		}
		if value == "" {
			delete(p.Labels, key)
		} else {
			if p.Labels == nil {
				p.Labels = map[string]string{}
			}
			p.Labels[key] = value
		}
		_, err = peers.Update(ctx, p, metav1.UpdateOptions{})
		return err
	})
}

// waitAnnounced waits until the Service's bgplb.io/Announced condition has status st and
// reason, and returns it.
func waitAnnounced(t *testing.T, s *suite.Suite, ns, name string, st metav1.ConditionStatus, reason string) metav1.Condition {
	t.Helper()
	var got metav1.Condition
	suite.Eventually(t, s.Timeouts.Converge, fmt.Sprintf("%s on %s/%s is %s/%s", lbv1.ConditionAnnounced, ns, name, st, reason), func() error {
		svc, err := s.Kube.CoreV1().Services(ns).Get(context.Background(), name, getOpts)
		if err != nil {
			return err
		}
		c := meta.FindStatusCondition(svc.Status.Conditions, lbv1.ConditionAnnounced)
		if c == nil {
			return fmt.Errorf("no condition (conditions %+v)", svc.Status.Conditions)
		}
		if c.Status != st || c.Reason != reason {
			return fmt.Errorf("condition is %s/%s: %s", c.Status, c.Reason, c.Message)
		}
		got = *c
		return nil
	})
	return got
}

// routerHas returns nil when the router's RIB and FIB next hops for vip are exactly want
// (sorted; empty: no route).
func routerHas(s *suite.Suite, vip netip.Addr, want []netip.Addr) error {
	rib, err := s.RIBNextHops(vip)
	if err != nil {
		return err
	}
	if !slices.Equal(rib, want) {
		return fmt.Errorf("RIB of %s has %v, want %v", vip, rib, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fib, err := s.Router.FIBNextHops(ctx, suite.HostPrefix(vip))
	if err != nil {
		return err
	}
	if !slices.Equal(fib, want) {
		return fmt.Errorf("FIB of %s has %v, want %v", vip, fib, want)
	}
	return nil
}

// watchRouter checks every 200ms, until the returned function is called, that the
// router's RIB and FIB next hops for vip are exactly want (sorted); the function returns
// the first deviation (nil: none) and may be called more than once.
func watchRouter(s *suite.Suite, vip netip.Addr, want []netip.Addr) func() error {
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			if err := routerHas(s, vip, want); err != nil {
				done <- fmt.Errorf("at %s: %w", time.Now().Format(time.TimeOnly), err)
				return
			}
			select {
			case <-stop:
				done <- nil
				return
			case <-tick.C:
			}
		}
	}()
	return sync.OnceValue(func() error {
		close(stop)
		return <-done
	})
}
