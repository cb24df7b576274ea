package registry

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/bgplb/bgplb/daemon/registry/api"
)

type fakeRecorder struct{ events []string }

func (f *fakeRecorder) Eventf(obj runtime.Object, typ, reason, msgFmt string, args ...any) {
	f.events = append(f.events, fmt.Sprintf("%s %s %s", typ, reason, fmt.Sprintf(msgFmt, args...)))
}

func TestReportNotReady(t *testing.T) {
	ctx := context.Background()
	r := New(WithAttachedFunc(func(string) (bool, int, error) { return true, 1, nil }))
	ep := func(id, ip, dpErr string) api.Endpoint {
		return api.Endpoint{ContainerID: id, IfName: "eth0", PodNamespace: "default", PodName: "pod-" + id,
			IPs: []netip.Addr{netip.MustParseAddr(ip)}, HostIfName: "veth" + id, DatapathError: dpErr}
	}
	if err := r.Register(ctx, ep("a", "198.19.1.5", "attach pod program: no bpffs")); err != nil {
		t.Fatal(err)
	}
	rec := &fakeRecorder{}
	var gauge float64
	cancel := r.ReportNotReady(rec, func(v float64) { gauge = v })
	defer cancel()
	if gauge != 1 || len(rec.events) != 1 || !strings.Contains(rec.events[0], "Warning DatapathNotReady") || !strings.Contains(rec.events[0], "no bpffs") {
		t.Fatalf("after start: gauge %v, events %q", gauge, rec.events)
	}
	if err := r.Register(ctx, ep("b", "198.19.1.6", "")); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(ctx, ep("c", "198.19.1.7", "bgplbd rejected the registration")); err != nil {
		t.Fatal(err)
	}
	if gauge != 2 || len(rec.events) != 2 {
		t.Fatalf("after b, c: gauge %v, events %q", gauge, rec.events)
	}
	if !r.Registered("default", "pod-b", netip.MustParseAddr("198.19.1.6")) || r.Registered("default", "pod-c", netip.MustParseAddr("198.19.1.7")) {
		t.Fatal("Registered must accept the ready endpoint only")
	}
	r.Unregister(ctx, "a", "eth0")
	if gauge != 1 {
		t.Fatalf("after unregistering a: gauge %v", gauge)
	}
}

// TestRegisteredNeedsPodIdentity: the address alone never proves whose pod an endpoint is.
func TestRegisteredNeedsPodIdentity(t *testing.T) {
	ctx := context.Background()
	r := New(WithAttachedFunc(func(string) (bool, int, error) { return true, 1, nil }))
	ip := netip.MustParseAddr("198.19.1.5")
	if err := r.Register(ctx, api.Endpoint{ContainerID: "a", IfName: "eth0", PodNamespace: "victim", PodName: "db", IPs: []netip.Addr{ip}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(ctx, api.Endpoint{ContainerID: "b", IfName: "eth0", IPs: []netip.Addr{netip.MustParseAddr("198.19.1.6")}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ns, name, ip string
		want         bool
	}{
		{"victim", "db", "198.19.1.5", true},
		{"attacker", "db", "198.19.1.5", false},
		{"victim", "", "198.19.1.5", false},
		{"", "", "198.19.1.5", false},
		{"victim", "other", "198.19.1.5", false},
		{"", "", "198.19.1.6", false}, // registered without pod metadata
	} {
		if got := r.Registered(c.ns, c.name, netip.MustParseAddr(c.ip)); got != c.want {
			t.Errorf("Registered(%q, %q, %s) = %v, want %v", c.ns, c.name, c.ip, got, c.want)
		}
	}
}
