package app

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bgplb/bgplb/daemon/bgp"
)

// fakePeers is a peerLister whose answer the test sets.
type fakePeers struct {
	mu    sync.Mutex
	peers []bgp.PeerStatus
	err   error
}

func (f *fakePeers) Peers(context.Context) ([]bgp.PeerStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.peers, f.err
}

func (f *fakePeers) set(peers []bgp.PeerStatus, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.peers, f.err = peers, err
}

type fakeQueue struct{ n int }

func (q *fakeQueue) Len() int { return q.n }

// get serves one request to the health mux and returns its status and body.
func get(t *testing.T, h *health, path string) (int, string) {
	t.Helper()
	mux := http.NewServeMux()
	h.install(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

func TestReadyzChecks(t *testing.T) {
	sp := &fakePeers{err: bgp.ErrNotStarted}
	h := newHealth(sp, true)

	code, body := get(t, h, "/readyz")
	if code != http.StatusInternalServerError {
		t.Fatalf("before start: status %d, want 500:\n%s", code, body)
	}
	for _, want := range []string{
		"[-]informers failed: caches not synced\n",
		"[-]initial-sync failed: first sync pass not done\n",
		"[-]bgp-speaker failed: bgp speaker not started\n",
		"[-]datapath failed: not loaded\n",
		"readyz check failed\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("before start: body lacks %q:\n%s", want, body)
		}
	}

	// Started, one peer configured but down: only bgp-sessions fails.
	h.setInformersSynced()
	h.setDatapath(true, t.TempDir())
	h.setStarted(&fakeQueue{})
	sp.set([]bgp.PeerStatus{{Name: "router", State: "Active"}}, nil)
	code, body = get(t, h, "/readyz")
	if code != http.StatusInternalServerError || !strings.Contains(body, "[-]bgp-sessions failed: 0 of 1 established\n") ||
		!strings.Contains(body, "[+]bgp-speaker ok\n") || !strings.Contains(body, "[+]informers ok\n") {
		t.Fatalf("peer down: status %d:\n%s", code, body)
	}
	if strings.Count(body, "[-]") != 1 {
		t.Fatalf("peer down: want only bgp-sessions failing:\n%s", body)
	}

	// One of two established: ready; "ok" unless ?verbose.
	sp.set([]bgp.PeerStatus{{Name: "a", State: "Active"}, {Name: "b", State: bgp.StateEstablished}}, nil)
	if code, body = get(t, h, "/readyz"); code != http.StatusOK || body != "ok" {
		t.Fatalf("peer up: status %d body %q", code, body)
	}
	code, body = get(t, h, "/readyz?verbose")
	if code != http.StatusOK || !strings.Contains(body, "[+]bgp-sessions ok\n") || !strings.HasSuffix(body, "readyz check passed\n") {
		t.Fatalf("verbose: status %d:\n%s", code, body)
	}

	// No peers configured: sessions do not gate readiness.
	sp.set(nil, nil)
	if code, body = get(t, h, "/readyz"); code != http.StatusOK {
		t.Fatalf("no peers: status %d:\n%s", code, body)
	}

	// The speaker stops answering.
	sp.set(nil, errors.New("list peers: context deadline exceeded"))
	if code, body = get(t, h, "/readyz"); code != http.StatusInternalServerError || !strings.Contains(body, "[-]bgp-speaker failed: list peers") {
		t.Fatalf("speaker down: status %d:\n%s", code, body)
	}

	sp.set(nil, nil)
	h.setStopping()
	if code, body = get(t, h, "/readyz"); code != http.StatusInternalServerError || !strings.Contains(body, "[-]initial-sync failed: shutting down") {
		t.Fatalf("stopping: status %d:\n%s", code, body)
	}
}

func TestReadyzWithoutDatapath(t *testing.T) {
	h := newHealth(&fakePeers{}, false)
	h.setInformersSynced()
	h.setStarted(&fakeQueue{})
	code, body := get(t, h, "/readyz?verbose")
	if code != http.StatusOK || strings.Contains(body, "datapath") {
		t.Fatalf("--datapath=false: status %d:\n%s", code, body)
	}
}

func TestReadyzDatapathPinDirGone(t *testing.T) {
	h := newHealth(&fakePeers{}, true)
	dir := filepath.Join(t.TempDir(), "pins")
	h.setDatapath(true, dir)
	if err := h.checkDatapath(context.Background()); err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("pin dir missing: %v", err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := h.checkDatapath(context.Background()); err != nil {
		t.Fatalf("pin dir present: %v", err)
	}
	h.setDatapath(false, dir)
	if err := h.checkDatapath(context.Background()); err == nil || err.Error() != "not loaded" {
		t.Fatalf("not loaded: %v", err)
	}
}

func TestHealthzDetectsStalledQueue(t *testing.T) {
	now := time.Unix(1000, 0)
	h := newHealth(&fakePeers{}, false)
	h.now = func() time.Time { return now }
	q := &fakeQueue{}

	// Before the first pass is done the queue is not watched.
	q.n = 5
	if code, body := get(t, h, "/healthz"); code != http.StatusOK || body != "ok" {
		t.Fatalf("not started: status %d body %q", code, body)
	}
	h.setStarted(q)

	// Keys waiting, syncs completing: healthy however long keys keep arriving.
	for range 10 {
		now = now.Add(30 * time.Second)
		h.synced()
		if code, body := get(t, h, "/healthz"); code != http.StatusOK {
			t.Fatalf("syncing: status %d:\n%s", code, body)
		}
	}

	// Keys waiting, no sync for 61 s: wedged.
	now = now.Add(30 * time.Second)
	if code, _ := get(t, h, "/healthz"); code != http.StatusOK {
		t.Fatalf("30 s without a sync: status %d", code)
	}
	now = now.Add(31 * time.Second)
	code, body := get(t, h, "/healthz")
	if code != http.StatusInternalServerError || !strings.Contains(body, "[-]announce-queue failed: 5 keys waiting, no sync completed for 1m1s\n") ||
		!strings.Contains(body, "[+]ping ok\n") {
		t.Fatalf("stalled: status %d:\n%s", code, body)
	}

	// One sync completes: healthy again.
	h.synced()
	if code, body := get(t, h, "/healthz"); code != http.StatusOK {
		t.Fatalf("after a sync: status %d:\n%s", code, body)
	}

	// An idle queue (no keys) is healthy however long no sync ran; keys that then
	// arrive get their own 60 s from when a check first sees them.
	q.n = 0
	now = now.Add(10 * time.Minute)
	if code, _ := get(t, h, "/healthz"); code != http.StatusOK {
		t.Fatalf("idle: status %d", code)
	}
	q.n = 1
	if code, body := get(t, h, "/healthz"); code != http.StatusOK {
		t.Fatalf("keys just arrived after idling: status %d:\n%s", code, body)
	}
	now = now.Add(61 * time.Second)
	if code, _ := get(t, h, "/healthz"); code != http.StatusInternalServerError {
		t.Fatalf("key waiting 61 s: status %d, want 500", code)
	}
}

func TestPeerSamples(t *testing.T) {
	since := time.Unix(5000, 0)
	sp := &fakePeers{peers: []bgp.PeerStatus{
		{Name: "r1", State: bgp.StateEstablished, EstablishedSince: since, PrefixesSent: 3},
		{Name: "r2", State: "Active", PrefixesSent: 0},
	}}
	sp.peers[0].Address, sp.peers[1].Address = netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("2001:db8::1")
	got, err := peerSamples(sp)(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[0].Up || got[0].EstablishedSince != since || got[0].PrefixesSent != 3 || got[0].Address != "198.18.0.1" ||
		got[1].Up || !got[1].EstablishedSince.IsZero() || got[1].Address != "2001:db8::1" || got[1].Name != "r2" {
		t.Fatalf("samples: %+v", got)
	}
}
