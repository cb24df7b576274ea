package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/bgplb/bgplb/daemon/bgp"
	"github.com/bgplb/bgplb/daemon/metrics"
)

// Health checks, answered like kube-apiserver's: one line per check ("[+]informers ok",
// "[-]bgp-sessions failed: 0 of 1 established"), status 200 or 500. A passing endpoint
// answers "ok" unless ?verbose is given; a failing one always lists every check.
//
//   - /readyz: the informers synced, the first sync pass is done (and the daemon is not
//     shutting down), the BGP speaker answers, the datapath is loaded (--datapath), and
//     when this node has BGP sessions configured, at least one is Established. A node
//     whose routers are all down is not ready: it announces nothing.
//   - /healthz: the control loop is not wedged: the announce queue has had keys waiting
//     without one sync completing for longer than stallAfter. The DaemonSet's liveness
//     probe uses only /healthz, so a router outage never restarts the daemon.

const (
	// stallAfter is how long keys may wait in the announce queue with no sync completing
	// before /healthz fails.
	stallAfter = 60 * time.Second
	// speakerTimeout bounds the speaker's answer to one check.
	speakerTimeout = 2 * time.Second
)

// peerLister is the part of the speaker the checks read.
type peerLister interface {
	// Peers returns the status of every configured neighbour; it fails before Start.
	Peers(ctx context.Context) ([]bgp.PeerStatus, error)
}

// queueLen is the part of the work queue the liveness check reads.
type queueLen interface {
	// Len returns the number of keys waiting (not those being processed or backing off).
	Len() int
}

// health holds the state the checks read. The zero value is not usable: use newHealth.
type health struct {
	speaker  peerLister
	datapath bool // --datapath: the datapath check applies
	now      func() time.Time

	mu              sync.Mutex
	informersSynced bool
	started         bool // the first sync pass is done and the daemon is not stopping
	stopping        bool // shutdown began
	dpLoaded        bool
	pinDir          string   // bpffs dir of the datapath's maps and links
	queue           queueLen // the announce queue, watched once started
	lastSync        time.Time
	waitingSince    time.Time // when a check first saw keys waiting (zero: none seen)
}

func newHealth(speaker peerLister, datapath bool) *health {
	return &health{speaker: speaker, datapath: datapath, now: time.Now}
}

// setInformersSynced records that every informer cache synced.
func (h *health) setInformersSynced() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.informersSynced = true
}

// setDatapath records whether the datapath loaded (maps adopted, uplinks attached) and
// where it is pinned.
func (h *health) setDatapath(loaded bool, pinDir string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dpLoaded, h.pinDir = loaded, pinDir
}

// setStarted records the end of the first pass; from now on q is watched for stalls.
func (h *health) setStarted(q queueLen) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.started, h.queue, h.lastSync = true, q, h.now()
}

// setStopping records that shutdown began.
func (h *health) setStopping() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.started, h.stopping = false, true
}

// synced records that one sync of the announce queue completed (with or without error:
// a failing sync is not a wedged loop).
func (h *health) synced() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastSync = h.now()
}

// check is one named health check; run returns nil when it passes.
type check struct {
	name string
	run  func(ctx context.Context) error
}

// readyChecks returns the checks of one /readyz request.
func (h *health) readyChecks() []check {
	var bgpOnce sync.Once // bgp-speaker and bgp-sessions share one Peers call
	var speakerErr, sessionsErr error
	bgpResult := func(ctx context.Context) {
		bgpOnce.Do(func() { speakerErr, sessionsErr = h.checkBGP(ctx) })
	}
	if h.speaker == nil { // --mode=allocator: no speaker, no datapath
		return []check{{"informers", h.checkInformers}, {"initial-sync", h.checkStarted}}
	}
	cs := []check{
		{"informers", h.checkInformers},
		{"initial-sync", h.checkStarted},
		{"bgp-speaker", func(ctx context.Context) error { bgpResult(ctx); return speakerErr }},
		{"bgp-sessions", func(ctx context.Context) error { bgpResult(ctx); return sessionsErr }},
	}
	if h.datapath {
		cs = append(cs, check{"datapath", h.checkDatapath})
	}
	return cs
}

// liveChecks returns the checks of one /healthz request.
func (h *health) liveChecks() []check {
	return []check{
		{"ping", func(context.Context) error { return nil }},
		{"announce-queue", h.checkQueue},
	}
}

func (h *health) checkInformers(context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.informersSynced {
		return errors.New("caches not synced")
	}
	return nil
}

func (h *health) checkStarted(context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.stopping:
		return errors.New("shutting down")
	case !h.started:
		return errors.New("first sync pass not done")
	}
	return nil
}

// checkDatapath passes once the datapath loaded and while its pin dir exists (removing
// it unpins the maps the CNI plugin and the programs share).
func (h *health) checkDatapath(context.Context) error {
	h.mu.Lock()
	loaded, pinDir := h.dpLoaded, h.pinDir
	h.mu.Unlock()
	if !loaded {
		return errors.New("not loaded")
	}
	if _, err := os.Stat(pinDir); err != nil {
		return fmt.Errorf("pin dir: %w", err)
	}
	return nil
}

// checkBGP returns the results of bgp-speaker (the speaker answers) and bgp-sessions
// (with sessions configured, at least one is Established).
func (h *health) checkBGP(ctx context.Context) (speaker, sessions error) {
	ctx, cancel := context.WithTimeout(ctx, speakerTimeout)
	defer cancel()
	peers, err := h.speaker.Peers(ctx)
	if err != nil {
		return err, errors.New("unknown: the speaker did not answer")
	}
	up := 0
	for _, p := range peers {
		if p.State == bgp.StateEstablished {
			up++
		}
	}
	if len(peers) > 0 && up == 0 {
		return nil, fmt.Errorf("0 of %d established", len(peers))
	}
	return nil, nil
}

// checkQueue fails when keys have waited in the announce queue for longer than
// stallAfter without any sync completing.
func (h *health) checkQueue(context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.queue == nil {
		return nil // not started: the first pass runs synchronously
	}
	n := h.queue.Len()
	now := h.now()
	if n == 0 {
		h.waitingSince = time.Time{}
		return nil
	}
	if h.waitingSince.IsZero() {
		h.waitingSince = now
	}
	since := h.waitingSince
	if h.lastSync.After(since) {
		since = h.lastSync
	}
	if d := now.Sub(since); d > stallAfter {
		return fmt.Errorf("%d keys waiting, no sync completed for %s", n, d.Truncate(time.Second))
	}
	return nil
}

// handler serves one health endpoint from checks.
func (h *health) handler(endpoint string, checks func() []check) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var b strings.Builder
		failed := false
		for _, c := range checks() {
			if err := c.run(r.Context()); err != nil {
				failed = true
				fmt.Fprintf(&b, "[-]%s failed: %v\n", c.name, err)
				continue
			}
			fmt.Fprintf(&b, "[+]%s ok\n", c.name)
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if failed {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, "%s%s check failed\n", b.String(), endpoint)
			return
		}
		if _, verbose := r.URL.Query()["verbose"]; verbose {
			fmt.Fprintf(w, "%s%s check passed\n", b.String(), endpoint)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}
}

// install registers /healthz and /readyz on mux.
func (h *health) install(mux *http.ServeMux) {
	mux.Handle("/healthz", h.handler("healthz", h.liveChecks))
	mux.Handle("/readyz", h.handler("readyz", h.readyChecks))
}

// peerSamples returns the per-peer metrics source reading the speaker on scrape.
func peerSamples(speaker peerLister) metrics.PeerSource {
	return func(ctx context.Context) ([]metrics.PeerSample, error) {
		ctx, cancel := context.WithTimeout(ctx, speakerTimeout)
		defer cancel()
		peers, err := speaker.Peers(ctx)
		if err != nil {
			return nil, err
		}
		out := make([]metrics.PeerSample, 0, len(peers))
		for _, p := range peers {
			s := metrics.PeerSample{Name: p.Name, Address: p.Address.String(), PrefixesSent: p.PrefixesSent}
			if p.State == bgp.StateEstablished {
				s.Up, s.EstablishedSince = true, p.EstablishedSince
			}
			if b := p.BFD; b != nil {
				s.BFD = &metrics.BFDSample{Up: b.State == "Up", Downs: b.Downs, PacketsIn: b.PacketsIn, PacketsOut: b.PacketsOut}
			}
			out = append(out, s)
		}
		return out, nil
	}
}
