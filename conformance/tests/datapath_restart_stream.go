package tests

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/bgplb/bgplb/conformance/suite"
)

// E2-datapath (DatapathStreamSurvivesRestart): a long-lived TCP connection through the VIP
// keeps working while bgplbd is SIGKILLed and restarted.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName:   "DatapathStreamSurvivesRestart",
		ID:          "E2-datapath",
		Description: "a long-lived TCP connection through the VIP keeps working while bgplbd is SIGKILLed and restarted",
		Needs:       []suite.Adapter{suite.AdapterFaults},
		Profile:     "LB-DATAPATH",
		Features:    []suite.Feature{suite.FeatureTCPViaVIP, suite.FeatureFlowsSurviveRest},
		Slow:        true,
		Test:        testStreamSurvivesRestart,
	})
}

func testStreamSurvivesRestart(t *testing.T, s *suite.Suite) {
	if s.Faults == nil {
		t.Skip("this cluster provides no fault injection (Suite.Faults)")
	}
	ctx := context.Background()
	ns := s.Namespace(t, "conf-stream")
	d := s.Backend(t, ns, "stream", s.NodeName(1), 1)
	s.LBService(t, ns, "stream", "stream", suite.WithLocal)
	vip := s.WaitIngress(t, ns, "stream")
	s.WaitPods(t, ns, d, 1)
	s.EventuallyNextHops(t, vip, s.NodeAddrs(s.NodeName(1)))
	suite.Eventually(t, s.Timeouts.Converge, "first answer from "+vip.String(), func() error {
		_, err := s.HTTPGet(ctx, vip, 80, "/hostname")
		return err
	})

	conn, err := s.Client.Dial(ctx, "tcp", netip.AddrPortFrom(vip, 80).String())
	if err != nil {
		t.Fatalf("open the long-lived connection: %v", err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	exchange := func(i int) error {
		_ = conn.SetDeadline(time.Now().Add(s.Timeouts.Request))
		msg := fmt.Sprintf("tick-%d", i)
		if _, err := fmt.Fprintf(conn, "GET /echo?msg=%s HTTP/1.1\r\nHost: vip\r\n\r\n", msg); err != nil {
			return fmt.Errorf("write %s: %w", msg, err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return fmt.Errorf("read answer to %s: %w", msg, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("read body of %s: %w", msg, err)
		}
		if resp.StatusCode != http.StatusOK || string(body) != msg && string(body) != msg+"\n" {
			return fmt.Errorf("answer to %s: %s %q", msg, resp.Status, body)
		}
		return nil
	}
	if err := exchange(0); err != nil {
		t.Fatal(err)
	}
	if err := s.Faults.SignalDaemon(ctx, s.NodeName(1), syscall.SIGKILL, true); err != nil {
		t.Fatalf("kill and restart bgplbd on node1: %v", err)
	}
	// Keep the stream busy through the restart and a while after it.
	end := time.Now().Add(s.Timeouts.Converge)
	for i := 1; time.Now().Before(end); i++ {
		if err := exchange(i); err != nil {
			t.Fatalf("the stream broke %d exchanges after the restart: %v", i, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
