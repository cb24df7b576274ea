package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func testEndpoint(id, ifName string) Endpoint {
	return Endpoint{
		ContainerID:  id,
		IfName:       ifName,
		Netns:        "/var/run/netns/" + id,
		PodNamespace: "default",
		PodName:      "pod-" + id,
		PodUID:       "uid-" + id,
		IPs:          []netip.Addr{netip.MustParseAddr("198.19.1.5"), netip.MustParseAddr("2001:db8:1:1::5")},
		HostIfName:   "veth" + id,
		HostIfIndex:  7,
		LinkPin:      "/sys/fs/bpf/bgplb/links/pod_" + id + "_" + ifName,
		Created:      time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC),
	}
}

func TestKey(t *testing.T) {
	if got := testEndpoint("abc", "eth0").Key(); got != "abc/eth0" {
		t.Fatalf("Key() = %q, want abc/eth0", got)
	}
}

func TestValidate(t *testing.T) {
	for name, e := range map[string]Endpoint{
		"no container": {IfName: "eth0"},
		"no ifname":    {ContainerID: "a"},
		"slash":        {ContainerID: "a", IfName: "x/y"},
		"bad ip":       {ContainerID: "a", IfName: "eth0", IPs: []netip.Addr{{}}},
	} {
		if err := e.Validate(); !errors.Is(err, ErrInvalidEndpoint) {
			t.Errorf("%s: Validate() = %v, want ErrInvalidEndpoint", name, err)
		}
	}
	if err := testEndpoint("a", "eth0").Validate(); err != nil {
		t.Errorf("valid endpoint: %v", err)
	}
}

func TestRecordStoreRoundTrip(t *testing.T) {
	s := RecordStore{Dir: filepath.Join(t.TempDir(), "endpoints")}
	// A missing directory is an empty store.
	if eps, err := s.List(); err != nil || len(eps) != 0 {
		t.Fatalf("List on missing dir = %v, %v", eps, err)
	}
	if _, ok, err := s.Get("a", "eth0"); ok || err != nil {
		t.Fatalf("Get on missing dir = %v, %v", ok, err)
	}
	if err := s.Delete("a", "eth0"); err != nil {
		t.Fatalf("Delete on missing dir: %v", err)
	}

	a, b := testEndpoint("a", "eth0"), testEndpoint("b", "net1")
	for _, e := range []Endpoint{b, a} {
		if err := s.Put(e); err != nil {
			t.Fatalf("Put(%s): %v", e.Key(), err)
		}
	}
	got, ok, err := s.Get("a", "eth0")
	if err != nil || !ok || !reflect.DeepEqual(got, a) {
		t.Fatalf("Get(a) = %+v, %v, %v; want %+v", got, ok, err, a)
	}
	eps, err := s.List()
	if err != nil || !reflect.DeepEqual(eps, []Endpoint{a, b}) {
		t.Fatalf("List = %+v, %v", eps, err)
	}
	// Put replaces.
	a.HostIfIndex = 99
	if err := s.Put(a); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := s.Get("a", "eth0"); got.HostIfIndex != 99 {
		t.Fatalf("Put did not replace: %+v", got)
	}
	if err := s.Delete("a", "eth0"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("a", "eth0"); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if eps, _ := s.List(); len(eps) != 1 || eps[0].Key() != "b/net1" {
		t.Fatalf("after delete List = %+v", eps)
	}
	// Only the record file remains: no temporary files.
	files, _ := os.ReadDir(s.Dir)
	if len(files) != 1 {
		t.Fatalf("files in store: %v", files)
	}
	if err := s.Put(Endpoint{ContainerID: "x"}); !errors.Is(err, ErrInvalidEndpoint) {
		t.Fatalf("Put(invalid) = %v", err)
	}
}

func TestRecordStoreNamesAreInjective(t *testing.T) {
	s := RecordStore{Dir: t.TempDir()}
	// Pairs that a naive "<id>_<if>" scheme would map to the same file.
	pairs := [][2]string{{"a_b", "c"}, {"a", "b_c"}, {"a@b", "c"}, {"a", "b@c"}, {"..", "eth0"}, {"a", "%40"}}
	for _, p := range pairs {
		if err := s.Put(testEndpoint(p[0], p[1])); err != nil {
			t.Fatalf("Put(%v): %v", p, err)
		}
	}
	eps, err := s.List()
	if err != nil || len(eps) != len(pairs) {
		t.Fatalf("List = %d records, %v; want %d", len(eps), err, len(pairs))
	}
	for _, p := range pairs {
		if got, ok, err := s.Get(p[0], p[1]); !ok || err != nil || got.ContainerID != p[0] || got.IfName != p[1] {
			t.Fatalf("Get(%v) = %+v %v %v", p, got, ok, err)
		}
	}
	files, _ := os.ReadDir(s.Dir)
	for _, f := range files {
		if strings.Contains(f.Name(), "/") || !strings.HasSuffix(f.Name(), ".json") {
			t.Fatalf("unexpected file %q", f.Name())
		}
	}
}

func TestRecordStoreCorruptRecordDoesNotHideOthers(t *testing.T) {
	s := RecordStore{Dir: t.TempDir()}
	if err := s.Put(testEndpoint("a", "eth0")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "bad@eth0.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Temporary files of in-flight writers are ignored.
	if err := os.WriteFile(filepath.Join(s.Dir, ".tmp-123"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	eps, err := s.List()
	if err == nil || len(eps) != 1 || eps[0].ContainerID != "a" {
		t.Fatalf("List = %+v, %v; want one record and a decode error", eps, err)
	}
}

func TestRecordStoreConcurrentWriters(t *testing.T) {
	s := RecordStore{Dir: t.TempDir()}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 10 {
				e := testEndpoint(fmt.Sprintf("c%02d", i), "eth0")
				e.HostIfIndex = j
				if err := s.Put(e); err != nil {
					errs <- err
				}
				// Readers never see a partial record.
				if _, err := s.List(); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	eps, err := s.List()
	if err != nil || len(eps) != 20 {
		t.Fatalf("List = %d, %v", len(eps), err)
	}
	for _, e := range eps {
		if e.HostIfIndex != 9 {
			t.Fatalf("%s: last write lost: %d", e.Key(), e.HostIfIndex)
		}
	}
}

// fakeDaemon serves the wire protocol on a unix socket with a plain map, to test the
// client independently of package registry.
func fakeDaemon(t *testing.T) (string, *sync.Map) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var m sync.Map
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/endpoints", func(w http.ResponseWriter, r *http.Request) {
		var e Endpoint
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil || e.Validate() != nil {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(ErrorBody{Error: "bad endpoint"})
			return
		}
		m.Store(e.Key(), e)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /v1/endpoints/{id}/{ifname}", func(w http.ResponseWriter, r *http.Request) {
		m.Delete(r.PathValue("id") + "/" + r.PathValue("ifname"))
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /v1/endpoints", func(w http.ResponseWriter, _ *http.Request) {
		eps := []Endpoint{}
		m.Range(func(_, v any) bool { eps = append(eps, v.(Endpoint)); return true })
		_ = json.NewEncoder(w).Encode(eps)
	})
	mux.HandleFunc("GET /v1/ping", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sock, &m
}

func TestClient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sock, m := fakeDaemon(t)
	c := NewClient(sock)
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	e := testEndpoint("a", "net@1")
	if err := c.Register(ctx, e); err != nil {
		t.Fatalf("Register: %v", err)
	}
	eps, err := c.List(ctx)
	if err != nil || len(eps) != 1 || !reflect.DeepEqual(eps[0], e) {
		t.Fatalf("List = %+v, %v", eps, err)
	}
	if err := c.Unregister(ctx, "a", "net@1"); err != nil {
		t.Fatalf("Unregister: %v", err)
	}
	if _, ok := m.Load("a/net@1"); ok {
		t.Fatal("endpoint still registered after Unregister")
	}
	err = c.Register(ctx, Endpoint{})
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusBadRequest || se.Message != "bad endpoint" || IsUnreachable(err) {
		t.Fatalf("Register(invalid) = %v", err)
	}
}

func TestClientUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := NewClient(filepath.Join(t.TempDir(), "missing.sock"))
	err := c.Ping(ctx)
	if err == nil || !IsUnreachable(err) {
		t.Fatalf("Ping to missing socket = %v, want unreachable error", err)
	}
	if IsUnreachable(nil) {
		t.Fatal("IsUnreachable(nil)")
	}
}

func TestRecordStoreLock(t *testing.T) {
	s := RecordStore{Dir: filepath.Join(t.TempDir(), "endpoints")}
	// Two shared holders at once (parallel ADDs).
	u1, err := s.Lock(false)
	if err != nil {
		t.Fatal(err)
	}
	u2, err := s.Lock(false)
	if err != nil {
		t.Fatal(err)
	}
	// An exclusive holder (GC, Rebuild) waits for both.
	got := make(chan func(), 1)
	go func() {
		u, err := s.Lock(true)
		if err != nil {
			t.Error(err)
		}
		got <- u
	}()
	select {
	case <-got:
		t.Fatal("exclusive lock granted while shared locks are held")
	case <-time.After(200 * time.Millisecond):
	}
	u1()
	u2()
	select {
	case u := <-got:
		u()
	case <-time.After(10 * time.Second):
		t.Fatal("exclusive lock not granted after the shared locks were released")
	}
	// The lock file is not a record.
	if eps, err := s.List(); err != nil || len(eps) != 0 {
		t.Fatalf("List = %v, %v", eps, err)
	}
}
