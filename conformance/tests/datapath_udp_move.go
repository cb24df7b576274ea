package tests

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/bgplb/bgplb/conformance/suite"
)

// D6 (second half): one UDP flow with a fixed source port keeps being answered when its
// backend moves from node1 to node2: after the move, its datagrams reach the new backend
// within T (no stale flow state pins it to the gone one).
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "DatapathUDPBackendMoves",
		ID:        "D6",
		Description: "one UDP flow (fixed source port) to an ETP=Cluster VIP: answered by node1's backend; the backend " +
			"moves to node2; the same flow is answered by node2's backend within T",
		Profile:  "LB-DATAPATH",
		Features: []suite.Feature{suite.FeatureUDP, suite.FeatureETPCluster},
		Test:     testDatapathUDPBackendMoves,
	})
}

func testDatapathUDPBackendMoves(t *testing.T, s *suite.Suite) {
	ctx := context.Background()
	ns := s.Namespace(t, "conf-dp-udp-move")
	d1 := s.Backend(t, ns, "udpmv", s.NodeName(1), 1, suite.WithUDPPort(udpTargetPort))
	d2 := s.Backend(t, ns, "udpmv", s.NodeName(2), 0, suite.WithUDPPort(udpTargetPort))
	s.LBService(t, ns, "udpmv", "udpmv", func(svc *corev1.Service) {
		svc.Spec.Ports = []corev1.ServicePort{{Name: "udp", Port: udpServicePort,
			Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(udpTargetPort)}}
	})
	vip := s.WaitIngress(t, ns, "udpmv")
	s.WaitPods(t, ns, d1, 1)
	s.EventuallyNextHops(t, vip, s.AllNodeAddrs())

	// One connected socket: every datagram is the same 5-tuple, so the same flow.
	conn, err := s.Client.Dial(ctx, "udp", net.JoinHostPort(vip.String(), fmt.Sprint(udpServicePort)))
	if err != nil {
		t.Fatalf("dial udp %s: %v", vip, err)
	}
	defer conn.Close()
	t.Logf("the flow: %s → %s", conn.LocalAddr(), conn.RemoteAddr())
	seq := 0
	ask := func() (string, error) {
		seq++
		payload := fmt.Sprintf("m%d", seq)
		if err := conn.SetDeadline(time.Now().Add(s.Timeouts.Request)); err != nil {
			return "", err
		}
		if _, err := conn.Write([]byte(payload)); err != nil {
			return "", err
		}
		buf := make([]byte, 1500)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return "", err
			}
			host, _, echo := parseUDPReply(string(buf[:n]))
			if echo == payload { // skip late answers to earlier datagrams
				return host, nil
			}
		}
	}
	want := func(prefix string) error {
		host, err := ask()
		if err != nil {
			return err
		}
		if !strings.HasPrefix(host, prefix) {
			return fmt.Errorf("answered by %s", host)
		}
		return nil
	}
	suite.Eventually(t, s.Timeouts.Converge, "the flow answered by node1's backend", func() error { return want(d1 + "-") })

	t.Log("move the backend from node1 to node2")
	s.Scale(t, ns, d2, 1)
	s.Scale(t, ns, d1, 0)
	start := time.Now()
	suite.Eventually(t, s.Timeouts.Converge, "the same flow answered by node2's backend", func() error { return want(d2 + "-") })
	t.Logf("the flow reached node2's backend %s after node1's was gone", time.Since(start).Round(time.Millisecond))
}
