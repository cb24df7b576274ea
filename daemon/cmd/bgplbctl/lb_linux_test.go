//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bgplb/bgplb/bpf"
	"github.com/bgplb/bgplb/daemon/clusterview"
)

func TestLBListOnRealMaps(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (bpf maps in bpffs)")
	}
	pinDir := filepath.Join("/sys/fs/bpf", fmt.Sprintf("bgplbctl-test-%d", os.Getpid()))
	t.Cleanup(func() { _ = os.RemoveAll(pinDir) }) // unpins the test's maps
	m, err := bpf.OpenMaps(pinDir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	be := bpf.Backend{Addr: netip.MustParseAddrPort("198.19.1.5:8080"), Ifindex: 7}
	if err := m.PutBackend(3, be); err != nil {
		t.Fatal(err)
	}
	if err := m.PutBackend(4, bpf.Backend{Addr: netip.MustParseAddrPort("198.19.1.6:8080"), Ifindex: 8, Terminating: true}); err != nil {
		t.Fatal(err)
	}
	k := bpf.ServiceKey{VIP: netip.MustParseAddr("203.0.113.10"), Port: 80, Proto: bpf.ProtoTCP}
	if err := m.PutService(k, bpf.Service{ID: 9, Local: true}, []uint32{3}); err != nil {
		t.Fatal(err)
	}
	empty := bpf.ServiceKey{VIP: netip.MustParseAddr("203.0.113.11"), Port: 53, Proto: bpf.ProtoUDP}
	if err := m.PutService(empty, bpf.Service{ID: 10}, nil); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := runLBList(pinDir, &out); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{"203.0.113.10:80/TCP", "Local", "198.19.1.5:8080 #3", "203.0.113.11:53/UDP", "no local backend: to kernel"} {
		if !strings.Contains(s, want) {
			t.Errorf("lb list lacks %q:\n%s", want, s)
		}
	}
	if i, j := strings.Index(s, "198.19.1.6:8080 #4"), strings.Index(s, "established flows only"); i < 0 || j < 0 || i < j {
		t.Errorf("the draining backend is not listed in its own section:\n%s", s)
	}
	t.Log("\n" + s)

	// The same tables as JSON.
	out.Reset()
	if err := printLBList(pinDir, clusterview.Printer{Format: clusterview.FormatJSON}, &out); err != nil {
		t.Fatal(err)
	}
	var l LBList
	if err := json.Unmarshal(out.Bytes(), &l); err != nil {
		t.Fatalf("lb list -o json: %v\n%s", err, out.String())
	}
	if len(l.Frontends) != 2 || l.Frontends[0].Frontend != "203.0.113.10:80/TCP" || !l.Frontends[0].Local ||
		len(l.Frontends[0].Backends) != 1 || l.Frontends[0].Backends[0].Address != "198.19.1.5:8080" ||
		len(l.Draining) != 1 || l.Draining[0].ID != 4 || !l.Draining[0].Terminating {
		t.Errorf("lb list -o json = %+v", l)
	}
}
