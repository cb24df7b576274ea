//go:build linux

package bpf

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"
)

// requireRoot skips tests that need root (bpf(2), netns, mounts).
func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root for bpf(2), bpffs and network namespaces")
	}
}

// newPinDir mounts a private bpffs for the test and returns a pin directory in it.
func newPinDir(tb testing.TB) string {
	tb.Helper()
	requireRoot(tb)
	mnt := tb.TempDir()
	if err := unix.Mount("bpf", mnt, "bpf", 0, "mode=0700"); err != nil {
		tb.Fatalf("mount bpffs on %s: %v", mnt, err)
	}
	tb.Cleanup(func() {
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			tb.Errorf("unmount bpffs %s: %v", mnt, err)
		}
	})
	return filepath.Join(mnt, "bgplb")
}

var nsCounter atomic.Int64

// testNetns is a named network namespace (/run/netns/<name>) removed at cleanup.
type testNetns struct {
	name string
	path string
}

func newNetns(tb testing.TB) *testNetns {
	tb.Helper()
	requireRoot(tb)
	name := fmt.Sprintf("bgplb-bpft-%d-%d", os.Getpid(), nsCounter.Add(1))
	run(tb, "ip", "netns", "add", name)
	tb.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			tb.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	return &testNetns{name: name, path: "/run/netns/" + name}
}

// addVeth creates a veth pair inside the namespace, both ends up, and returns
// the ifindex of host.
func (n *testNetns) addVeth(tb testing.TB, host, peer string) int {
	tb.Helper()
	run(tb, "ip", "-n", n.name, "link", "add", host, "type", "veth", "peer", "name", peer)
	run(tb, "ip", "-n", n.name, "link", "set", host, "up")
	run(tb, "ip", "-n", n.name, "link", "set", peer, "up")
	var idx int
	n.do(tb, func() error {
		ifc, err := net.InterfaceByName(host)
		if err != nil {
			return err
		}
		idx = ifc.Index
		return nil
	})
	return idx
}

func (n *testNetns) delLink(tb testing.TB, name string) {
	tb.Helper()
	run(tb, "ip", "-n", n.name, "link", "del", name)
}

// do runs fn on an OS thread switched into the namespace (pkg/ns). fn must not
// start goroutines (they would run in another namespace).
func (n *testNetns) do(tb testing.TB, fn func() error) {
	tb.Helper()
	if err := ns.WithNetNSPath(n.path, func(ns.NetNS) error { return fn() }); err != nil {
		tb.Fatalf("in netns %s: %v", n.name, err)
	}
}

func run(tb testing.TB, name string, args ...string) {
	tb.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		tb.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
}

func mustAddr(tb testing.TB, s string) netip.Addr {
	tb.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// pod runs lb_pod on pkt as if it entered on the host veth of the backend that
// owns the packet's source address (skb->ifindex is that backend's Ifindex; a
// veth with that index exists in the fixture's namespace), or on
// ifindex 1 (lo) when no backend has the address.
func (f *fixture) pod(tb testing.TB, pkt []byte) (uint32, []byte) {
	tb.Helper()
	ifindex := 0
	if d, err := decodePacket(pkt); err == nil {
		bes, err := f.maps.Backends()
		must(tb, err)
		for _, b := range bes {
			if b.Backend.Addr.Addr() == d.src.Addr() {
				ifindex = b.Backend.Ifindex
			}
		}
	}
	return f.podOn(tb, ifindex, pkt)
}

// podOn runs lb_pod on pkt entering on interface ifindex (0: the test run's default).
func (f *fixture) podOn(tb testing.TB, ifindex int, pkt []byte) (uint32, []byte) {
	tb.Helper()
	if ifindex == 0 {
		return runProg(tb, f.objs.LbPod, pkt)
	}
	if f.ns == nil {
		f.ns = newNetns(tb)
		f.ifs = map[int]bool{}
	}
	if !f.ifs[ifindex] {
		run(tb, "ip", "-n", f.ns.name, "link", "add", fmt.Sprintf("d%d", ifindex), "index", fmt.Sprint(ifindex),
			"type", "veth", "peer", "name", fmt.Sprintf("p%d", ifindex), "index", fmt.Sprint(ifindex+1000))
		f.ifs[ifindex] = true
	}
	var (
		ret uint32
		out []byte
	)
	f.ns.do(tb, func() error {
		ctx := make([]byte, skbCtxSize)
		binary.NativeEndian.PutUint32(ctx[skbIfindexOff:], uint32(ifindex))
		opts := ebpf.RunOptions{Data: pkt, DataOut: make([]byte, len(pkt)+256), Context: ctx}
		var err error
		ret, err = f.objs.LbPod.Run(&opts)
		out = opts.DataOut
		return err
	})
	return ret, out
}

// The __sk_buff prefix BPF_PROG_TEST_RUN takes as context: fields up to and
// including ifindex (offset 40), which the kernel turns into skb->dev.
const (
	skbIfindexOff = 40
	skbCtxSize    = 44
)
