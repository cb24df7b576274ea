package kubelet

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// Readiness probe parameters, as a pod would declare them.
const (
	probePeriod      = 500 * time.Millisecond
	probeTimeout     = time.Second
	failureThreshold = 3
	successThreshold = 1
)

// readiness turns probe results into a Ready state like the kubelet's prober:
// it becomes ready after successThreshold consecutive successes and not ready
// after failureThreshold consecutive failures.
type readiness struct {
	ready     bool
	successes int
	failures  int
}

// observe records one probe result and reports whether Ready changed.
func (r *readiness) observe(ok bool) bool {
	if ok {
		r.failures = 0
		r.successes++
		if !r.ready && r.successes >= successThreshold {
			r.ready = true
			return true
		}
		return false
	}
	r.successes = 0
	r.failures++
	if r.ready && r.failures >= failureThreshold {
		r.ready = false
		return true
	}
	return false
}

// probeResult is the outcome of one GET /ready.
type probeResult struct {
	answered bool // an HTTP response arrived (any status)
	ok       bool // status 200-399
}

// prober GETs /ready of pod IPs.
type prober struct {
	client *http.Client
}

func newProber() *prober {
	return &prober{client: &http.Client{
		Timeout: probeTimeout,
		Transport: &http.Transport{
			// One fresh connection per probe, like the kubelet's HTTP prober.
			DisableKeepAlives: true,
			DialContext:       (&net.Dialer{Timeout: probeTimeout}).DialContext,
		},
	}}
}

// probe sends GET http://ip:port/ready.
func (p *prober) probe(ctx context.Context, ip netip.Addr, port int) (probeResult, error) {
	url := "http://" + net.JoinHostPort(ip.String(), strconv.Itoa(port)) + "/ready"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return probeResult{}, fmt.Errorf("build probe request: %w", err)
	}
	req.Header.Set("User-Agent", "bgplb-lab-kubelet/probe")
	resp, err := p.client.Do(req)
	if err != nil {
		return probeResult{}, fmt.Errorf("probe %s: %w", url, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096)) // body unused
	resp.Body.Close()
	ok := resp.StatusCode >= 200 && resp.StatusCode < 400
	if !ok {
		return probeResult{answered: true}, fmt.Errorf("probe %s: HTTP %d", url, resp.StatusCode)
	}
	return probeResult{answered: true, ok: true}, nil
}
