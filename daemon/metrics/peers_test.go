package metrics

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/component-base/metrics/testutil"
)

func TestPeerCollector(t *testing.T) {
	now := time.Unix(10_000, 0)
	c := &peerCollector{now: func() time.Time { return now }}
	c.src = func(context.Context) ([]PeerSample, error) {
		return []PeerSample{
			{Name: "router", Address: "198.18.0.1", Up: true, EstablishedSince: now.Add(-90 * time.Second), PrefixesSent: 4},
			{Name: "router-v6", Address: "2001:db8::1", Up: false, PrefixesSent: 0},
		}, nil
	}
	want := `
# HELP bgplb_bgp_peer_established_seconds [ALPHA] Seconds since the BGP session with the peer became Established; 0 while it is down.
# TYPE bgplb_bgp_peer_established_seconds gauge
bgplb_bgp_peer_established_seconds{address="198.18.0.1",peer="router"} 90
bgplb_bgp_peer_established_seconds{address="2001:db8::1",peer="router-v6"} 0
# HELP bgplb_bgp_peer_prefixes_sent [ALPHA] Number of prefixes advertised to the peer.
# TYPE bgplb_bgp_peer_prefixes_sent gauge
bgplb_bgp_peer_prefixes_sent{address="198.18.0.1",peer="router"} 4
bgplb_bgp_peer_prefixes_sent{address="2001:db8::1",peer="router-v6"} 0
# HELP bgplb_bgp_peer_session_up [ALPHA] 1 while the BGP session with the peer is Established, else 0.
# TYPE bgplb_bgp_peer_session_up gauge
bgplb_bgp_peer_session_up{address="198.18.0.1",peer="router"} 1
bgplb_bgp_peer_session_up{address="2001:db8::1",peer="router-v6"} 0
`
	if err := testutil.CustomCollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

func TestPeerCollectorSourceFails(t *testing.T) {
	// A failing or missing source reports no series (not stale ones).
	failing := func(context.Context) ([]PeerSample, error) { return nil, errors.New("bgp speaker not started") }
	for _, src := range []PeerSource{failing, nil} {
		c := &peerCollector{now: time.Now, src: src}
		if err := testutil.CustomCollectAndCompare(c, strings.NewReader("")); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPeerCollectorBFD(t *testing.T) {
	c := &peerCollector{now: time.Now}
	c.src = func(context.Context) ([]PeerSample, error) {
		return []PeerSample{{Name: "router", Address: "198.18.0.1", BFD: &BFDSample{Up: true, Downs: 2, PacketsIn: 40, PacketsOut: 41}}}, nil
	}
	want := `
# HELP bgplb_bfd_packets_received_total [ALPHA] Valid BFD control packets received from the peer.
# TYPE bgplb_bfd_packets_received_total counter
bgplb_bfd_packets_received_total{address="198.18.0.1",peer="router"} 40
# HELP bgplb_bfd_packets_sent_total [ALPHA] BFD control packets sent to the peer.
# TYPE bgplb_bfd_packets_sent_total counter
bgplb_bfd_packets_sent_total{address="198.18.0.1",peer="router"} 41
# HELP bgplb_bfd_session_downs_total [ALPHA] Transitions of the BFD session with the peer from Up (each shut the BGP session down).
# TYPE bgplb_bfd_session_downs_total counter
bgplb_bfd_session_downs_total{address="198.18.0.1",peer="router"} 2
# HELP bgplb_bfd_session_up [ALPHA] 1 while the BFD session with the peer is Up, else 0.
# TYPE bgplb_bfd_session_up gauge
bgplb_bfd_session_up{address="198.18.0.1",peer="router"} 1
`
	if err := testutil.CustomCollectAndCompare(c, strings.NewReader(want), "bgplb_bfd_packets_received_total",
		"bgplb_bfd_packets_sent_total", "bgplb_bfd_session_downs_total", "bgplb_bfd_session_up"); err != nil {
		t.Fatal(err)
	}
}
