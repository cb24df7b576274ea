package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/klog/v2/ktesting"

	"github.com/bgplb/bgplb/daemon/registry/api"
	"github.com/bgplb/bgplb/internal/poll"
)

func ep(id, ifName, ns, pod string, ips ...string) api.Endpoint {
	e := api.Endpoint{
		ContainerID:  id,
		IfName:       ifName,
		Netns:        "/var/run/netns/" + id,
		PodNamespace: ns,
		PodName:      pod,
		HostIfName:   "veth" + id,
		HostIfIndex:  10,
		LinkPin:      "/pins/" + id + "_" + ifName,
		Created:      time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC),
	}
	for _, ip := range ips {
		e.IPs = append(e.IPs, netip.MustParseAddr(ip))
	}
	return e
}

type event struct {
	key     string
	deleted bool
}

func record(r *Registry) (func() []event, func()) {
	var (
		mu  sync.Mutex
		evs []event
	)
	cancel := r.Subscribe(func(e api.Endpoint, deleted bool) {
		mu.Lock()
		defer mu.Unlock()
		evs = append(evs, event{e.Key(), deleted})
	})
	return func() []event {
		mu.Lock()
		defer mu.Unlock()
		return append([]event(nil), evs...)
	}, cancel
}

func TestRegisterLookupUnregister(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	r := New(WithAttachedFunc(nil))
	events, cancel := record(r)

	a := ep("a", "eth0", "default", "web-1", "198.19.1.5", "2001:db8:1:1::5")
	b := ep("b", "eth0", "default", "web-2", "198.19.1.6")
	for _, e := range []api.Endpoint{a, b, a} { // a twice: idempotent
		if err := r.Register(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if r.Len() != 2 {
		t.Fatalf("Len = %d", r.Len())
	}
	if got, ok := r.ByIP(netip.MustParseAddr("2001:db8:1:1::5")); !ok || got.Key() != "a/eth0" {
		t.Fatalf("ByIP(v6) = %v, %v", got.Key(), ok)
	}
	// v4-mapped v6 finds the v4 endpoint.
	if got, ok := r.ByIP(netip.MustParseAddr("::ffff:198.19.1.6")); !ok || got.Key() != "b/eth0" {
		t.Fatalf("ByIP(mapped) = %v, %v", got.Key(), ok)
	}
	if _, ok := r.ByIP(netip.MustParseAddr("198.19.1.7")); ok {
		t.Fatal("ByIP found an unknown IP")
	}
	if got := r.ByPod("default", "web-2"); len(got) != 1 || got[0].Key() != "b/eth0" {
		t.Fatalf("ByPod = %v", got)
	}
	// Replacing a with a new IP reindexes it.
	a2 := a
	a2.IPs = []netip.Addr{netip.MustParseAddr("198.19.1.9")}
	if err := r.Register(ctx, a2); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.ByIP(netip.MustParseAddr("198.19.1.5")); ok {
		t.Fatal("old IP still indexed after replace")
	}
	if got, ok := r.ByIP(netip.MustParseAddr("198.19.1.9")); !ok || got.Key() != "a/eth0" {
		t.Fatal("new IP not indexed after replace")
	}
	r.Unregister(ctx, "a", "eth0")
	r.Unregister(ctx, "a", "eth0") // idempotent, no event
	r.Unregister(ctx, "nope", "eth0")
	if _, ok := r.Get("a", "eth0"); ok {
		t.Fatal("a still registered")
	}
	if len(r.ByPod("default", "web-1")) != 0 {
		t.Fatal("ByPod still finds a")
	}
	want := []event{{"a/eth0", false}, {"b/eth0", false}, {"a/eth0", false}, {"a/eth0", true}}
	if got := events(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
	cancel()
	r.Unregister(ctx, "b", "eth0")
	if got := events(); len(got) != len(want) {
		t.Fatalf("event after cancel: %v", got)
	}
	if err := r.Register(ctx, api.Endpoint{ContainerID: "x"}); !errors.Is(err, api.ErrInvalidEndpoint) {
		t.Fatalf("Register(invalid) = %v", err)
	}
}

func TestHandlerMayRead(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	r := New(WithAttachedFunc(nil))
	seen := 0
	r.Subscribe(func(e api.Endpoint, deleted bool) {
		// Reads from inside a handler must not deadlock and must see the change.
		_, ok := r.Get(e.ContainerID, e.IfName)
		if ok == deleted {
			t.Errorf("handler for %s deleted=%v sees registered=%v", e.Key(), deleted, ok)
		}
		seen++
	})
	if err := r.Register(ctx, ep("a", "eth0", "", "", "198.19.1.5")); err != nil {
		t.Fatal(err)
	}
	r.Unregister(ctx, "a", "eth0")
	if seen != 2 {
		t.Fatalf("handler called %d times", seen)
	}
}

func TestRebuild(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	store := api.RecordStore{Dir: t.TempDir()}
	live := ep("live", "eth0", "default", "web-1", "198.19.1.5")
	gone := ep("gone", "eth0", "default", "web-2", "198.19.1.6")
	broken := ep("broken", "eth0", "default", "web-3", "198.19.1.7")
	for _, e := range []api.Endpoint{live, gone, broken} {
		if err := store.Put(e); err != nil {
			t.Fatal(err)
		}
	}
	attached := func(pin string) (bool, int, error) {
		switch pin {
		case live.LinkPin:
			return true, live.HostIfIndex, nil
		case broken.LinkPin:
			return false, 0, errors.New("pin is not a link")
		}
		return false, 0, nil
	}
	r := New(WithAttachedFunc(attached))
	// An endpoint registered earlier without a record is forgotten by Rebuild.
	if err := r.Register(ctx, ep("norecord", "eth0", "", "", "198.19.1.8")); err != nil {
		t.Fatal(err)
	}
	events, _ := record(r)
	res, err := r.Rebuild(ctx, store)
	if err == nil {
		t.Fatal("Rebuild did not report the pin check error")
	}
	if len(res.Adopted) != 1 || res.Adopted[0].Key() != "live/eth0" {
		t.Fatalf("Adopted = %v", res.Adopted)
	}
	if len(res.Dropped) != 1 || res.Dropped[0].Key() != "gone/eth0" {
		t.Fatalf("Dropped = %v", res.Dropped)
	}
	keys := []string{}
	for _, e := range r.List() {
		keys = append(keys, e.Key())
	}
	if fmt.Sprint(keys) != "[live/eth0]" {
		t.Fatalf("registry after Rebuild = %v", keys)
	}
	if _, ok, _ := store.Get("gone", "eth0"); ok {
		t.Fatal("dropped record still in store")
	}
	if _, ok, _ := store.Get("broken", "eth0"); !ok {
		t.Fatal("record with unknown pin state was removed")
	}
	want := []event{{"live/eth0", false}, {"norecord/eth0", true}}
	if got := events(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
	// A second Rebuild with nothing changed notifies nobody.
	if _, err := r.Rebuild(ctx, store); err == nil {
		t.Fatal("second Rebuild lost the error")
	}
	if got := events(); len(got) != len(want) {
		t.Fatalf("second Rebuild events = %v", got)
	}
}

// serve runs r.Serve on a temporary socket. wait cancels the server and returns Serve's
// result; it is also called at cleanup, so it may be called more than once.
func TestRebuildWaitsForCNIOperations(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	store := api.RecordStore{Dir: t.TempDir()}
	e := ep("a", "eth0", "", "", "198.19.1.5")
	r := New(WithAttachedFunc(func(string) (bool, int, error) { return true, e.HostIfIndex, nil }))
	// A CNI ADD is half done: it holds the shared lock and has not written its record yet.
	unlock, err := store.Lock(false)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := r.Rebuild(ctx, store)
		done <- err
	}()
	select {
	case <-done:
		t.Fatal("Rebuild ran while a CNI operation held the record lock")
	case <-time.After(200 * time.Millisecond):
	}
	if err := store.Put(e); err != nil {
		t.Fatal(err)
	}
	unlock()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Rebuild did not finish")
	}
	if _, ok := r.Get("a", "eth0"); !ok {
		t.Fatal("Rebuild missed the record completed while it waited")
	}
}

func serve(t *testing.T, r *Registry) (sock string, wait func() error) {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	sock = filepath.Join(t.TempDir(), "run", "bgplbd.sock")
	done := make(chan struct{})
	var serveErr error
	go func() { serveErr = r.Serve(ctx, sock); close(done) }()
	wait = func() error { cancel(); <-done; return serveErr }
	t.Cleanup(func() { _ = wait() })
	c := api.NewClient(sock)
	poll.Eventually(t, 10*time.Second, 10*time.Millisecond, "the server up", func() error { return c.Ping(context.Background()) })
	return sock, wait
}

func TestServe(t *testing.T) {
	r := New(WithAttachedFunc(nil))
	sock, wait := serve(t, r)
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket mode = %v, %v", fi.Mode(), err)
	}
	ctx, cctx := context.WithTimeout(context.Background(), 20*time.Second)
	defer cctx()
	c := api.NewClient(sock)

	// 50 concurrent clients, each registering twice and reading.
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := ep(fmt.Sprintf("c%02d", i), "eth0", "default", fmt.Sprintf("p%d", i), fmt.Sprintf("198.19.1.%d", i+1))
			for range 2 {
				if err := c.Register(ctx, e); err != nil {
					errs <- err
				}
			}
			if _, err := c.List(ctx); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	eps, err := c.List(ctx)
	if err != nil || len(eps) != 50 || r.Len() != 50 {
		t.Fatalf("List = %d, %v; registry has %d", len(eps), err, r.Len())
	}
	if got, ok := r.ByIP(netip.MustParseAddr("198.19.1.8")); !ok || got.Key() != "c07/eth0" {
		t.Fatalf("ByIP via server = %v, %v", got.Key(), ok)
	}
	for range 2 {
		if err := c.Unregister(ctx, "c07", "eth0"); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := r.Get("c07", "eth0"); ok {
		t.Fatal("c07 still registered")
	}
	// Invalid input is rejected with 400 and a JSON error.
	var se *api.StatusError
	if err := c.Register(ctx, api.Endpoint{IfName: "eth0"}); !errors.As(err, &se) || se.StatusCode != 400 {
		t.Fatalf("Register(invalid) = %v", err)
	}

	if err := wait(); err != nil {
		t.Fatalf("Serve returned %v after cancel", err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket not removed on shutdown: %v", err)
	}
	if err := c.Ping(ctx); !api.IsUnreachable(err) {
		t.Fatalf("Ping after shutdown = %v", err)
	}
}

func TestServeSocketFile(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	dir := t.TempDir()

	// A stale socket (nobody listening) is replaced.
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	_ = l.Close()
	if _, err := os.Stat(stale); err != nil {
		t.Fatalf("stale socket fixture: %v", err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	r := New(WithAttachedFunc(nil))
	go func() { done <- r.Serve(sctx, stale) }()
	c := api.NewClient(stale)
	poll.Eventually(t, 10*time.Second, 10*time.Millisecond, "the server replacing the stale socket", func() error { return c.Ping(ctx) })

	// A live socket is not taken over.
	if err := New(WithAttachedFunc(nil)).Serve(ctx, stale); err == nil {
		t.Fatal("second Serve took over a live socket")
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("first server disturbed: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// A regular file is never removed.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := New(WithAttachedFunc(nil)).Serve(ctx, file); err == nil {
		t.Fatal("Serve on a regular file succeeded")
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Fatal("regular file changed")
	}
}
