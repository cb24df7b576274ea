package tests

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/bgplb/bgplb/conformance/suite"
)

// D6 (DatapathUDPMixed): a Service with TCP/80 and UDP/80 on one VIP (mixed protocols):
// datagrams to the VIP reach the local backends of both nodes with the client's address
// preserved, and HTTP over the TCP port still answers.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "DatapathUDPMixed",
		ID:        "D6",
		Description: "a Service with TCP/80 and UDP/80 on one VIP (mixed protocols): datagrams to the VIP " +
			"reach the local backends of both nodes with the client's address preserved, and HTTP over " +
			"the TCP port still answers",
		Profile:  "LB-DATAPATH",
		Features: []suite.Feature{suite.FeatureUDP, suite.FeatureTCPViaVIP, suite.FeatureSourcePreserve},
		Test:     testDatapathUDPMixed,
	})
}

const (
	udpServicePort = 80
	udpTargetPort  = 5353
)

func testDatapathUDPMixed(t *testing.T, s *suite.Suite) {
	ctx := context.Background()
	ns := s.Namespace(t, "conf-dp-udp")
	d1 := s.Backend(t, ns, "udp", s.NodeName(1), 1, suite.WithUDPPort(udpTargetPort))
	d2 := s.Backend(t, ns, "udp", s.NodeName(2), 1, suite.WithUDPPort(udpTargetPort))
	s.LBService(t, ns, "udp", "udp", suite.WithLocal, func(svc *corev1.Service) {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: "udp", Port: udpServicePort,
			Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(udpTargetPort)})
	})
	vip := s.WaitIngress(t, ns, "udp")
	pods := append(s.WaitPods(t, ns, d1, 1), s.WaitPods(t, ns, d2, 1)...)
	s.EventuallyNextHops(t, vip, s.NodeAddrs(s.NodeName(1), s.NodeName(2)))

	suite.Eventually(t, s.Timeouts.Converge, "first datagram answered by "+vip.String(), func() error {
		_, err := udpAsk(ctx, s, vip, "hello")
		return err
	})
	// Each datagram comes from a new source port, so each is a new flow for the
	// router's ECMP and the datapath's backend choice.
	seen := map[string]int{}
	failures := 0
	const datagrams = 200
	for i := 0; i < datagrams; i++ {
		payload := fmt.Sprintf("n%d", i)
		reply, err := udpAsk(ctx, s, vip, payload)
		if err != nil {
			failures++
			t.Logf("datagram %d: %v", i, err)
			continue
		}
		host, client, echo := parseUDPReply(reply)
		if echo != payload {
			t.Errorf("datagram %d: echo %q, want %q (reply %q)", i, echo, payload, reply)
		}
		if ap, err := netip.ParseAddrPort(client); err != nil || ap.Addr() != s.Client.Address() {
			t.Errorf("datagram %d: the backend saw the client as %q, want %s (source preserved)", i, client, s.Client.Address())
		}
		seen[host]++
	}
	t.Logf("%d datagrams, %d unanswered, per backend: %v", datagrams, failures, seen)
	// UDP has no retransmission: allow a lost datagram or two on a busy machine, not more.
	if failures > 2 {
		t.Errorf("%d of %d datagrams unanswered", failures, datagrams)
	}
	for _, p := range pods {
		if seen[p.Name] == 0 {
			t.Errorf("backend %s (%s) never answered a datagram", p.Name, p.Spec.NodeName)
		}
	}
	if got, err := s.HTTPGet(ctx, vip, 80, "/clientip"); err != nil || got != s.Client.Address().String() {
		t.Errorf("TCP port of the mixed Service: /clientip = %q, %v; want %s", got, err, s.Client.Address())
	}
}

// udpAsk sends one datagram from the client to vip's UDP port and returns the reply.
func udpAsk(ctx context.Context, s *suite.Suite, vip netip.Addr, payload string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.Timeouts.Request)
	defer cancel()
	c, err := s.Client.Dial(ctx, "udp", net.JoinHostPort(vip.String(), fmt.Sprint(udpServicePort)))
	if err != nil {
		return "", fmt.Errorf("dial udp %s: %w", vip, err)
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	if err := c.SetDeadline(deadline.Add(-10 * time.Millisecond)); err != nil {
		return "", err
	}
	if _, err := c.Write([]byte(payload)); err != nil {
		return "", fmt.Errorf("send to %s: %w", vip, err)
	}
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		return "", fmt.Errorf("reply from %s: %w", vip, err)
	}
	return string(buf[:n]), nil
}

// parseUDPReply splits the pod server's "hostname=H client=C echo=E".
func parseUDPReply(reply string) (host, client, echo string) {
	for _, f := range strings.Fields(reply) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "hostname":
			host = v
		case "client":
			client = v
		case "echo":
			echo = v
		}
	}
	return host, client, echo
}
