package suite

import (
	"context"
	"net/netip"
	"sync"
	"time"
)

// Request is one request of a Load: when it started and ended, to which VIP, and
// its error (nil: answered 200).
type Request struct {
	VIP        netip.Addr
	Start, End time.Time
	Err        error
	// Backend is the answer of a successful request: the backend's host name.
	Backend string
}

// Load sends GET /hostname to VIPs:80 from the client, each on a new connection
// (Connection: close, so every request is a new flow), from a few workers in a loop.
// It is bounded: it stops after MaxRequests or MaxDuration, whichever comes first.
type Load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	reqs   []Request
}

// StartLoad starts workers sending requests to vips in turn until Stop, maxRequests
// or maxDuration.
func StartLoad(s *Suite, vips []netip.Addr, workers, maxRequests int, maxDuration time.Duration) *Load {
	ctx, cancel := context.WithTimeout(context.Background(), maxDuration)
	l := &Load{cancel: cancel}
	var mu sync.Mutex
	n := 0
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := w; ctx.Err() == nil; i++ {
				mu.Lock()
				n++
				over := n > maxRequests
				mu.Unlock()
				if over {
					return
				}
				vip := vips[i%len(vips)]
				start := time.Now()
				name, err := HTTPGetFrom(ctx, s.Client, s.Timeouts.Request, vip, 80, "/hostname")
				if ctx.Err() != nil {
					return // cut short by Stop: not a failure of the VIP
				}
				l.mu.Lock()
				l.reqs = append(l.reqs, Request{VIP: vip, Start: start, End: time.Now(), Err: err, Backend: name})
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// Stop ends the load, waits for the workers and returns every completed request.
func (l *Load) Stop() []Request {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reqs
}

// Snapshot returns the requests completed so far.
func (l *Load) Snapshot() []Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Request(nil), l.reqs...)
}
