//go:build lab

package lab_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bgplb/bgplb/conformance/lab"
	"github.com/bgplb/bgplb/conformance/labsuite"
	lbclient "github.com/bgplb/bgplb/daemon/client/clientset/versioned"
)

// Health endpoints of bgplbd in each node's namespace: the lab runs it with the default
// --health-bind-address and --metrics-bind-address.
const (
	healthURL  = "http://127.0.0.1:9465"
	metricsURL = "http://127.0.0.1:9464/metrics"
	// labPeer is the BGPPeer labsuite.ApplyBase creates for the lab router.
	labPeer = "lab-router"
)

// nodeHealth is what one probe of a node's bgplbd saw.
type nodeHealth struct {
	readyz   int    // status code of /readyz
	body     string // /readyz?verbose body
	healthz  int    // status code of /healthz
	up       string // bgplb_bgp_peer_session_up of labPeer ("" when absent)
	uptime   string // bgplb_bgp_peer_established_seconds of labPeer
	probeErr error
}

func probeNode(ctx context.Context, n lab.Node) nodeHealth {
	hc := lab.NetNS(n.Netns).HTTPClient(3 * time.Second)
	get := func(url string) (int, string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, "", err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	var h nodeHealth
	if h.readyz, h.body, h.probeErr = get(healthURL + "/readyz?verbose"); h.probeErr != nil {
		return h
	}
	if h.healthz, _, h.probeErr = get(healthURL + "/healthz"); h.probeErr != nil {
		return h
	}
	_, m, err := get(metricsURL)
	if h.probeErr = err; err != nil {
		return h
	}
	h.up = metricValue(m, "bgplb_bgp_peer_session_up", labPeer)
	h.uptime = metricValue(m, "bgplb_bgp_peer_established_seconds", labPeer)
	return h
}

// metricValue returns the value of the series name{..., peer="peer", ...} in a text
// exposition, or "".
func metricValue(exposition, name, peer string) string {
	for line := range strings.Lines(exposition) {
		if strings.HasPrefix(line, name+"{") && strings.Contains(line, `peer="`+peer+`"`) {
			f := strings.Fields(line)
			return f[len(f)-1]
		}
	}
	return ""
}

// waitAll polls every node until cond holds for all of them or timeout passes; it
// returns, per node, how long after start cond first held.
func waitAll(t *testing.T, ctx context.Context, nodes []lab.Node, start time.Time, timeout time.Duration, what string,
	cond func(nodeHealth) error) map[string]time.Duration {
	t.Helper()
	took := map[string]time.Duration{}
	last := map[string]error{}
	for len(took) < len(nodes) {
		for _, n := range nodes {
			if _, done := took[n.Name]; done {
				continue
			}
			h := probeNode(ctx, n)
			err := h.probeErr
			if err == nil {
				err = cond(h)
			}
			if err == nil {
				took[n.Name] = time.Since(start)
				continue
			}
			last[n.Name] = err
		}
		if len(took) < len(nodes) && time.Since(start) > timeout {
			t.Fatalf("%s: not on every node within %s (done: %v); last errors: %v", what, timeout, took, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return took
}

func ready(h nodeHealth) error {
	if h.readyz != http.StatusOK {
		return fmt.Errorf("/readyz %d:\n%s", h.readyz, h.body)
	}
	if h.up != "1" {
		return fmt.Errorf("session_up{peer=%q} = %q, want 1", labPeer, h.up)
	}
	return nil
}

// TestLabHealthFollowsRouter is issue 19's health acceptance: with a BGPPeer for the
// router, /readyz is ok on every node; when the router's bgpd hangs (SIGSTOP: only the
// hold time, 9 s, reveals it) or dies (SIGKILL), /readyz fails on every node within
// 15 s naming bgp-sessions, the per-peer metric says 0 and /healthz stays ok (liveness
// must not restart the daemon); when bgpd resumes or is restarted, both recover.
func TestLabHealthFollowsRouter(t *testing.T) {
	dir := labDir(t)
	opts := labOptions(t, dir)
	opts.NoDaemon, opts.Nodes, opts.Router = false, 2, lab.RouterFRR
	if _, err := os.Stat(filepath.Join(opts.BinDir, "bgplbd")); err != nil {
		t.Fatalf("missing binary: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	l, err := lab.Up(ctx, opts)
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	t.Cleanup(func() {
		if err := lab.Down(dir); err != nil {
			t.Errorf("down: %v", err)
		}
	})
	cfg, err := l.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	lbc, err := lbclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := labsuite.ApplyBase(ctx, lbc); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	took := waitAll(t, ctx, l.Nodes, start, 2*time.Minute, "ready with the session up", ready)
	t.Logf("ready with the session Established after ApplyBase: %v", took)

	// notReady waits until /readyz fails on every node for the sessions, then checks the
	// per-peer metrics and that liveness is unaffected.
	notReady := func(what string, since time.Time) {
		t.Helper()
		down := waitAll(t, ctx, l.Nodes, since, 15*time.Second, "/readyz fails after "+what, func(h nodeHealth) error {
			if h.readyz != http.StatusInternalServerError || !strings.Contains(h.body, "[-]bgp-sessions failed: 0 of 1 established") {
				return fmt.Errorf("/readyz %d:\n%s", h.readyz, h.body)
			}
			return nil
		})
		t.Logf("/readyz failing after %s: %v", what, down)
		for _, n := range l.Nodes {
			h := probeNode(ctx, n)
			if h.probeErr != nil || h.healthz != http.StatusOK || h.up != "0" || h.uptime != "0" {
				t.Errorf("%s after %s: healthz %d, session_up %q, established_seconds %q, err %v (want 200, 0, 0)",
					n.Name, what, h.healthz, h.up, h.uptime, h.probeErr)
			}
		}
	}
	// readyAgain waits until every node is ready with the session up again.
	readyAgain := func(what string, since time.Time) {
		t.Helper()
		up := waitAll(t, ctx, l.Nodes, since, 90*time.Second, "ready again after "+what, ready)
		t.Logf("ready with the session Established after %s: %v", what, up)
		for _, n := range l.Nodes {
			h := probeNode(ctx, n)
			if v, err := strconv.ParseFloat(h.uptime, 64); h.probeErr != nil || err != nil || v < 0 || v > time.Since(since).Seconds()+1 {
				t.Errorf("%s: established_seconds %q %s after %s (err %v)", n.Name, h.uptime, time.Since(since), what, h.probeErr)
			}
		}
	}

	// bgpd hangs (SIGSTOP): the sessions stay open but silent until the hold time (9 s).
	if err := l.PauseRouterBGP(true); err != nil {
		t.Fatal(err)
	}
	froze := time.Now()
	t.Cleanup(func() { _ = l.PauseRouterBGP(false) }) // never leave it stopped for Down
	notReady("bgpd froze", froze)
	if d := time.Since(froze); d < 5*time.Second {
		t.Errorf("/readyz failed %s after bgpd froze: before the hold time could expire", d)
	}
	if err := l.PauseRouterBGP(false); err != nil {
		t.Fatal(err)
	}
	readyAgain("bgpd resumed", time.Now())

	// bgpd dies (SIGKILL: no NOTIFICATION, the kernel closes its sockets).
	if err := l.StopRouterBGP(ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	notReady("bgpd was killed", time.Now())
	if err := l.StartRouterBGP(ctx); err != nil {
		t.Fatal(err)
	}
	readyAgain("bgpd restarted", time.Now())
}
