package registry

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/bgplb/bgplb/daemon/registry/api"
)

// TestLaterTimestampCannotTakeIP is issue 17's acceptance test on the real socket: a
// second registration (another attachment) for an IP that a live attachment holds is
// refused with 409, whatever its Created timestamp, and the first keeps the IP. Once the
// holder's link is gone, the IP may be registered again.
func TestLaterTimestampCannotTakeIP(t *testing.T) {
	live := map[string]bool{}
	r := New(WithAttachedFunc(func(pin string) (bool, int, error) { return live[pin], 10, nil }))
	sock, _ := serve(t, r)
	c := api.NewClient(sock)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	victim := ep("victim", "eth0", "prod", "db-0", "198.19.1.5")
	live[victim.LinkPin] = true
	if err := c.Register(ctx, victim); err != nil {
		t.Fatal(err)
	}
	thief := ep("thief", "eth0", "prod", "db-0", "198.19.1.5")
	thief.Created = victim.Created.Add(time.Hour)
	live[thief.LinkPin] = true
	err := c.Register(ctx, thief)
	var se *api.StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusConflict {
		t.Fatalf("second registration of a held IP: %v, want 409", err)
	}
	if got, ok := r.ByIP(netip.MustParseAddr("198.19.1.5")); !ok || got.ContainerID != "victim" {
		t.Fatalf("ByIP = %s, %v: want the first registration", got.Key(), ok)
	}
	if _, ok := r.Get("thief", "eth0"); ok {
		t.Fatal("the refused registration is in the registry")
	}
	// Re-registering the holder itself (same key) stays allowed.
	if err := c.Register(ctx, victim); err != nil {
		t.Fatal(err)
	}
	// The holder's pod is gone (link unpinned, DEL never reached us): a new pod may
	// take the IP and the stale holder is dropped.
	live[victim.LinkPin] = false
	if err := c.Register(ctx, thief); err != nil {
		t.Fatalf("registration after the holder's link is gone: %v", err)
	}
	if _, ok := r.Get("victim", "eth0"); ok {
		t.Fatal("stale holder still registered")
	}
	if got, _ := r.ByIP(netip.MustParseAddr("198.19.1.5")); got.ContainerID != "thief" {
		t.Fatalf("ByIP = %s after the takeover", got.Key())
	}
}

// TestClientExecutable: with WithClientExecutable the socket accepts registrations only
// from a process running that file (here: the test binary), by SO_PEERCRED's pid.
func TestClientExecutable(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e := ep("a", "eth0", "default", "web-1", "198.19.1.5")

	sock, _ := serve(t, New(WithAttachedFunc(nil), WithClientExecutable(self)))
	if err := api.NewClient(sock).Register(ctx, e); err != nil {
		t.Fatalf("registration from the expected executable: %v", err)
	}

	other := filepath.Join(t.TempDir(), "bgplb")
	if err := os.WriteFile(other, []byte("not the plugin"), 0o755); err != nil {
		t.Fatal(err)
	}
	sock, _ = serve(t, New(WithAttachedFunc(nil), WithClientExecutable(other)))
	c := api.NewClient(sock)
	var se *api.StatusError
	if err := c.Register(ctx, e); !errors.As(err, &se) || se.StatusCode != http.StatusForbidden {
		t.Fatalf("registration from another executable: %v, want 403", err)
	}
	if err := c.Unregister(ctx, "a", "eth0"); !errors.As(err, &se) || se.StatusCode != http.StatusForbidden {
		t.Fatalf("removal from another executable: %v, want 403", err)
	}
	if _, err := c.List(ctx); err != nil { // reads (bgplbctl) need root only
		t.Fatalf("list: %v", err)
	}
}

// TestNonRootClientRefused: a client that is not uid 0 is refused even when the socket's
// mode would let it connect (the mode is the first fence, SO_PEERCRED the second).
func TestNonRootClientRefused(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as another uid")
	}
	if os.Getenv("BGPLB_REGISTRY_TEST_CLIENT") != "" {
		return
	}
	r := New(WithAttachedFunc(nil))
	sock, _ := serve(t, r)
	for p := filepath.Dir(sock); p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	// The test binary re-runs itself as the client (TestRegistryClientHelper), from a
	// copy that the other uid can execute.
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "bgplb-registry-client")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	bin := filepath.Join(dir, "registry.test")
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run", "^TestRegistryClientHelper$", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BGPLB_REGISTRY_TEST_CLIENT="+sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client helper: %v\n%s", err, out)
	}
	if r.Len() != 0 {
		t.Fatalf("a non-root client registered an endpoint: %v", r.List())
	}
}

// TestRegistryClientHelper is the non-root client of TestNonRootClientRefused; it does
// nothing unless BGPLB_REGISTRY_TEST_CLIENT names a socket.
func TestRegistryClientHelper(t *testing.T) {
	sock := os.Getenv("BGPLB_REGISTRY_TEST_CLIENT")
	if sock == "" {
		return
	}
	if os.Getuid() == 0 {
		t.Fatal("helper runs as root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := api.NewClient(sock).Register(ctx, ep("x", "eth0", "default", "web", "198.19.1.9"))
	var se *api.StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusForbidden {
		t.Fatalf("uid %s: register = %v, want 403", strconv.Itoa(os.Getuid()), err)
	}
}
