package tests

import (
	"encoding/json"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/conformance/suite"
	lbv1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// G3 (BadInputPeers): BGPPeers with ASN 0, 4294967296 or missing, address 1.2.3.400 or
// 1.1.1, keepalive ≥ hold, hold < 3 s are rejected by the API server naming the field; no
// object is created and the router's sessions are not disturbed.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "BadInputPeers",
		ID:        "G3",
		Description: "BGPPeers with ASN 0, 4294967296 or missing, address 1.2.3.400 or 1.1.1, keepalive ≥ hold, " +
			"hold < 3 s are rejected by the API server naming the field; no object is created and the " +
			"router's sessions are not disturbed",
		Profile: "LB-BGP",
		// There is no bad-input feature; the assertion on the router is about sessions.
		Features: []suite.Feature{suite.FeatureNoSessionFlaps},
		Test:     testBadInputPeers,
	})
}

// unreachablePeer is an address of the lab fabric where nothing answers.
const unreachablePeer = "198.18.0.200"

func testBadInputPeers(t *testing.T, s *suite.Suite) {
	before := s.RequireSessions(t)
	neighborsBefore, err := s.Router.Neighbors(ctxBG)
	if err != nil {
		t.Fatal(err)
	}

	valid := func() lbv1.BGPPeerSpec {
		return lbv1.BGPPeerSpec{LocalASN: 64513, PeerASN: 64512, PeerAddress: unreachablePeer}
	}
	cases := []struct {
		name   string
		mutate func(*lbv1.BGPPeerSpec)
		field  string
	}{
		{"peer-asn-0", func(p *lbv1.BGPPeerSpec) { p.PeerASN = 0 }, "spec.peerASN"},
		{"local-asn-0", func(p *lbv1.BGPPeerSpec) { p.LocalASN = 0 }, "spec.localASN"},
		{"peer-asn-2-32", func(p *lbv1.BGPPeerSpec) { p.PeerASN = 4294967296 }, "spec.peerASN"},
		{"local-asn-2-32", func(p *lbv1.BGPPeerSpec) { p.LocalASN = 4294967296 }, "spec.localASN"},
		{"address-octet-400", func(p *lbv1.BGPPeerSpec) { p.PeerAddress = "1.2.3.400" }, "spec.peerAddress"},
		{"address-three-octets", func(p *lbv1.BGPPeerSpec) { p.PeerAddress = "1.1.1" }, "spec.peerAddress"},
		{"address-empty", func(p *lbv1.BGPPeerSpec) { p.PeerAddress = "" }, "spec.peerAddress"},
		{"source-address-bad", func(p *lbv1.BGPPeerSpec) { p.SourceAddress = "198.18.0.300" }, "spec.sourceAddress"},
		{"keepalive-above-hold", func(p *lbv1.BGPPeerSpec) {
			p.Timers = &lbv1.BGPTimers{HoldTimeSeconds: ptr.To[int32](9), KeepaliveTimeSeconds: ptr.To[int32](30)}
		}, "spec.timers.keepaliveTimeSeconds"},
		{"keepalive-equals-hold", func(p *lbv1.BGPPeerSpec) {
			p.Timers = &lbv1.BGPTimers{HoldTimeSeconds: ptr.To[int32](9), KeepaliveTimeSeconds: ptr.To[int32](9)}
		}, "spec.timers.keepaliveTimeSeconds"},
		{"hold-2", func(p *lbv1.BGPPeerSpec) { p.Timers = &lbv1.BGPTimers{HoldTimeSeconds: ptr.To[int32](2)} }, "spec.timers.holdTimeSeconds"},
		{"ttl-0", func(p *lbv1.BGPPeerSpec) { p.EBGPMultihopTTL = ptr.To[int32](0) }, "spec.ebgpMultihopTTL"},
		{"port-0", func(p *lbv1.BGPPeerSpec) { p.PeerPort = ptr.To[int32](0) }, "spec.peerPort"},
	}
	peers := s.LB.BgplbV1alpha1().BGPPeers()
	for _, c := range cases {
		spec := valid()
		c.mutate(&spec)
		p := &lbv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "conf-g3-" + c.name}, Spec: spec}
		_, err := peers.Create(ctxBG, p, metav1.CreateOptions{})
		if err == nil {
			_ = peers.Delete(ctxBG, p.Name, metav1.DeleteOptions{})
		}
		suite.ExpectInvalid(t, "peer "+c.name, err, c.field)
	}

	// Missing ASNs cannot be expressed with the typed client (int64 without omitempty).
	for _, missing := range []string{"peerASN", "localASN"} {
		name := "conf-g3-missing-" + strings.ToLower(missing)
		spec := map[string]any{"localASN": 64513, "peerASN": 64512, "peerAddress": unreachablePeer}
		delete(spec, missing)
		body, err := json.Marshal(map[string]any{"apiVersion": "bgplb.io/v1alpha1", "kind": "BGPPeer",
			"metadata": map[string]any{"name": name}, "spec": spec})
		if err != nil {
			t.Fatal(err)
		}
		res := s.LB.BgplbV1alpha1().RESTClient().Post().Resource("bgppeers").Body(body).Do(ctxBG)
		err = res.Error()
		if err == nil {
			_ = peers.Delete(ctxBG, name, metav1.DeleteOptions{})
		}
		suite.ExpectInvalid(t, "peer without "+missing, err, "spec."+missing)
	}

	list, err := peers.List(ctxBG, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range list.Items {
		if strings.HasPrefix(p.Name, "conf-g3-") {
			t.Errorf("peer %s exists after its create was expected to fail", p.Name)
		}
	}
	neighborsAfter, err := s.Router.Neighbors(ctxBG)
	if err != nil {
		t.Fatal(err)
	}
	if len(neighborsAfter) != len(neighborsBefore) {
		t.Errorf("router neighbours changed: before %+v, after %+v", neighborsBefore, neighborsAfter)
	}
	if err := s.SessionsUnchanged(ctxBG, before); err != nil {
		t.Error(err)
	}
}
