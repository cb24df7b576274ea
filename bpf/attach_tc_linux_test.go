//go:build linux

package bpf

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
)

// refuseTCX makes every tcx attach fail the way a kernel < 6.6 does, for the test's duration.
func refuseTCX(t *testing.T) {
	t.Helper()
	orig := attachTCX
	attachTCX = func(link.TCXOptions) (link.Link, error) {
		return nil, fmt.Errorf("attach tcx link: %w", link.ErrNotSupported)
	}
	t.Cleanup(func() { attachTCX = orig })
}

// tcFilters returns our cls_bpf ingress filters on ifindex (inside ns).
func tcFilters(t *testing.T, ns *testNetns, ifindex int) []*netlink.BpfFilter {
	t.Helper()
	var out []*netlink.BpfFilter
	ns.do(t, func() error {
		l, err := netlink.LinkByIndex(ifindex)
		if err != nil {
			return err
		}
		fs, err := netlink.FilterList(l, netlink.HANDLE_MIN_INGRESS)
		if err != nil {
			return nil // no clsact qdisc: no filters
		}
		for _, f := range fs {
			if bf, ok := f.(*netlink.BpfFilter); ok && bf.Handle == tcHandle {
				out = append(out, bf)
			}
		}
		return nil
	})
	return out
}

func podAttachedIn(t *testing.T, ns *testNetns, pin string) (ok bool, idx int) {
	t.Helper()
	ns.do(t, func() error {
		var err error
		ok, idx, err = PodAttached(pin)
		return err
	})
	return ok, idx
}

func TestAttachFallsBackToTCWhenTCXIsRefused(t *testing.T) {
	pinDir := newPinDir(t)
	ns := newNetns(t)
	hostIf := ns.addVeth(t, "h0", "p0")
	pin := PodLinkPin(pinDir, "container-tc", "eth0")
	refuseTCX(t)

	var mode AttachMode
	ns.do(t, func() (err error) {
		mode, err = AttachPodMode(pinDir, hostIf, pin, AttachAuto)
		return err
	})
	if mode != AttachTC {
		t.Fatalf("AttachPodMode(auto) with tcx refused used %q, want %q", mode, AttachTC)
	}
	if ids := tcxPrograms(t, ns, hostIf); len(ids) != 0 {
		t.Fatalf("tcx programs on h0 = %v, want none", ids)
	}
	fs := tcFilters(t, ns, hostIf)
	if len(fs) != 1 || fs[0].Priority != tcPodPriority || !fs[0].DirectAction || progName(t, ebpfID(fs[0].Id)) != progNamePod {
		t.Fatalf("tc filters on h0 = %+v, want one direct-action %s at priority %#x", fs, progNamePod, tcPodPriority)
	}
	if ok, idx := podAttachedIn(t, ns, pin); !ok || idx != hostIf {
		t.Fatalf("PodAttached = %v, %d; want true, %d", ok, idx, hostIf)
	}

	// Idempotent: attaching again keeps one filter.
	ns.do(t, func() error { _, err := AttachPodMode(pinDir, hostIf, pin, AttachAuto); return err })
	if fs := tcFilters(t, ns, hostIf); len(fs) != 1 {
		t.Fatalf("after second attach: %d filters, want 1", len(fs))
	}

	// Restart adoption: an upgraded daemon swaps its program into the filter.
	before := tcFilters(t, ns, hostIf)[0].Id
	var n int
	ns.do(t, func() (err error) { n, err = UpdatePrograms(pinDir); return err })
	after := tcFilters(t, ns, hostIf)
	if n != 1 || len(after) != 1 || after[0].Id == before {
		t.Fatalf("UpdatePrograms = %d, filters %+v (program before %d); want 1 updated with a new program", n, after, before)
	}
	if ok, idx := podAttachedIn(t, ns, pin); !ok || idx != hostIf {
		t.Fatalf("PodAttached after UpdatePrograms = %v, %d; want true, %d", ok, idx, hostIf)
	}

	// Detach removes our filter and the pin.
	ns.do(t, func() error { return DetachPod(pin) })
	if fs := tcFilters(t, ns, hostIf); len(fs) != 0 {
		t.Fatalf("after DetachPod: filters %+v", fs)
	}
	if _, err := os.Stat(pin); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pin still present after DetachPod: %v", err)
	}
	if ok, _ := podAttachedIn(t, ns, pin); ok {
		t.Fatal("PodAttached after DetachPod = true")
	}
}

func TestAttachTCXForcedDoesNotFallBack(t *testing.T) {
	pinDir := newPinDir(t)
	ns := newNetns(t)
	hostIf := ns.addVeth(t, "h0", "p0")
	refuseTCX(t)
	var err error
	ns.do(t, func() error {
		_, err = AttachPodMode(pinDir, hostIf, PodLinkPin(pinDir, "c", "eth0"), AttachTCX)
		return nil
	})
	if !errors.Is(err, ErrNotSupported) {
		t.Fatalf("AttachPodMode(tcx) with tcx refused: %v, want ErrNotSupported", err)
	}
	if fs := tcFilters(t, ns, hostIf); len(fs) != 0 {
		t.Fatalf("forced tcx left tc filters %+v", fs)
	}
}

func TestAttachModeSwitchAndInterfaceLoss(t *testing.T) {
	pinDir := newPinDir(t)
	ns := newNetns(t)
	hostIf := ns.addVeth(t, "h0", "p0")
	upIf := ns.addVeth(t, "u0", "r0")
	pin := PodLinkPin(pinDir, "container-sw", "eth0")
	upPin := UplinkLinkPin(pinDir, "u0")

	// Forced tc, then tcx on the same pin: the filter goes, the link comes.
	ns.do(t, func() error { _, err := AttachPodMode(pinDir, hostIf, pin, AttachTC); return err })
	ns.do(t, func() error { _, err := AttachUplinkMode(pinDir, upIf, upPin, AttachTC); return err })
	if fs := tcFilters(t, ns, upIf); len(fs) != 1 || fs[0].Priority != tcUplinkPriority {
		t.Fatalf("uplink filters %+v, want one at %#x", fs, tcUplinkPriority)
	}
	ns.do(t, func() error {
		ok, idx, err := UplinkAttached(upPin)
		if err == nil && (!ok || idx != upIf) {
			err = fmt.Errorf("UplinkAttached = %v, %d; want true, %d", ok, idx, upIf)
		}
		return err
	})
	ns.do(t, func() error { _, err := AttachPodMode(pinDir, hostIf, pin, AttachTCX); return err })
	if fs := tcFilters(t, ns, hostIf); len(fs) != 0 {
		t.Fatalf("after switching to tcx: filters %+v", fs)
	}
	if ids := tcxPrograms(t, ns, hostIf); len(ids) != 1 {
		t.Fatalf("after switching to tcx: %d tcx programs, want 1", len(ids))
	}
	// And back to tc.
	ns.do(t, func() error { _, err := AttachPodMode(pinDir, hostIf, pin, AttachTC); return err })
	if ids := tcxPrograms(t, ns, hostIf); len(ids) != 0 {
		t.Fatalf("after switching back to tc: %d tcx programs, want 0", len(ids))
	}
	if ok, idx := podAttachedIn(t, ns, pin); !ok || idx != hostIf {
		t.Fatalf("PodAttached = %v, %d; want true, %d", ok, idx, hostIf)
	}
	// The interface goes (pod deleted): not attached; DEL still succeeds.
	ns.delLink(t, "h0")
	if ok, _ := podAttachedIn(t, ns, pin); ok {
		t.Fatal("PodAttached after the interface was deleted = true")
	}
	ns.do(t, func() error { return DetachPod(pin) })
	ns.do(t, func() error { return DetachUplink(upPin) })
	if fs := tcFilters(t, ns, upIf); len(fs) != 0 {
		t.Fatalf("after DetachUplink: filters %+v", fs)
	}
}

func TestParseAttachMode(t *testing.T) {
	for in, want := range map[string]AttachMode{"": AttachAuto, "auto": AttachAuto, "tcx": AttachTCX, "tc": AttachTC} {
		if got, err := ParseAttachMode(in); err != nil || got != want {
			t.Errorf("ParseAttachMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseAttachMode("xdp"); err == nil {
		t.Error("ParseAttachMode(xdp) succeeded")
	}
}

func ebpfID(id int) ebpf.ProgramID { return ebpf.ProgramID(id) }
