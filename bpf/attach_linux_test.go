//go:build linux

package bpf

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

func TestPodLinkPin(t *testing.T) {
	got := PodLinkPin("/sys/fs/bpf/bgplb", "abc/def:1", "eth0")
	want := "/sys/fs/bpf/bgplb/links/pod_abc_def_1_eth0"
	if got != want {
		t.Fatalf("PodLinkPin = %q, want %q", got, want)
	}
	if got := UplinkLinkPin("/p", "en p0"); got != "/p/links/uplink_en_p0" {
		t.Fatalf("UplinkLinkPin = %q", got)
	}
}

func TestErrNotSupportedWrapsLink(t *testing.T) {
	if !errors.Is(ErrNotSupported, link.ErrNotSupported) {
		t.Fatal("ErrNotSupported does not wrap link.ErrNotSupported")
	}
}

// tcxPrograms returns the ids of the programs attached with tcx ingress on ifindex (inside ns).
func tcxPrograms(t *testing.T, ns *testNetns, ifindex int) []ebpf.ProgramID {
	t.Helper()
	var ids []ebpf.ProgramID
	ns.do(t, func() error {
		res, err := link.QueryPrograms(link.QueryOptions{Target: ifindex, Attach: ebpf.AttachTCXIngress})
		if err != nil {
			return err
		}
		for _, p := range res.Programs {
			ids = append(ids, p.ID)
		}
		return nil
	})
	return ids
}

func progName(t *testing.T, id ebpf.ProgramID) string {
	t.Helper()
	p, err := ebpf.NewProgramFromID(id)
	if err != nil {
		t.Fatalf("open program %d: %v", id, err)
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		t.Fatalf("program info %d: %v", id, err)
	}
	return info.Name
}

func mustAttached(t *testing.T, pin string, wantIf int) {
	t.Helper()
	ok, idx, err := PodAttached(pin)
	if err != nil {
		t.Fatalf("PodAttached(%s): %v", pin, err)
	}
	if !ok || idx != wantIf {
		t.Fatalf("PodAttached(%s) = %v, %d; want true, %d", pin, ok, idx, wantIf)
	}
}

func mustNotAttached(t *testing.T, pin string) {
	t.Helper()
	ok, idx, err := PodAttached(pin)
	if err != nil {
		t.Fatalf("PodAttached(%s): %v", pin, err)
	}
	if ok || idx != 0 {
		t.Fatalf("PodAttached(%s) = %v, %d; want false, 0", pin, ok, idx)
	}
}

func TestAttachPodLifecycle(t *testing.T) {
	pinDir := newPinDir(t)
	ns := newNetns(t)
	hostIf := ns.addVeth(t, "h0", "p0")
	pin := PodLinkPin(pinDir, "container-1", "eth0")

	mustNotAttached(t, pin)
	ns.do(t, func() error { return AttachPod(pinDir, hostIf, pin) })
	mustAttached(t, pin, hostIf)

	// The maps are pinned by name and the link outlives our (closed) fds.
	// (AttachPod loads only the pod program and the maps it uses.)
	for _, m := range []string{"lb_revnat", "lb_drops"} {
		if _, err := os.Stat(filepath.Join(pinDir, m)); err != nil {
			t.Errorf("map %s not pinned: %v", m, err)
		}
	}
	ids := tcxPrograms(t, ns, hostIf)
	if len(ids) != 1 || progName(t, ids[0]) != progNamePod {
		t.Fatalf("tcx ingress programs on h0 = %v, want exactly one %s", ids, progNamePod)
	}

	// Maps are reused, not recreated, by a later load.
	maps, err := OpenMaps(pinDir)
	if err != nil {
		t.Fatalf("OpenMaps: %v", err)
	}
	for _, m := range []string{"lb_services", "lb_vips", "lb_backends", "lb_maglev", "lb_src_ranges", "lb_ct", "lb_revnat", "lb_svc_stats", "lb_be_stats", "lb_drops"} {
		if _, err := os.Stat(filepath.Join(pinDir, m)); err != nil {
			t.Errorf("map %s not pinned after OpenMaps: %v", m, err)
		}
	}
	if err := maps.PutVIP(mustAddr(t, "203.0.113.7")); err != nil {
		t.Fatalf("PutVIP: %v", err)
	}
	maps.Close()

	// Idempotent: attaching again keeps exactly one program and the pin.
	ns.do(t, func() error { return AttachPod(pinDir, hostIf, pin) })
	mustAttached(t, pin, hostIf)
	if ids := tcxPrograms(t, ns, hostIf); len(ids) != 1 {
		t.Fatalf("after second AttachPod: %d programs attached, want 1", len(ids))
	}
	maps, err = OpenMaps(pinDir)
	if err != nil {
		t.Fatalf("OpenMaps: %v", err)
	}
	vips, err := maps.VIPs()
	maps.Close()
	if err != nil || len(vips) != 1 || vips[0] != mustAddr(t, "203.0.113.7") {
		t.Fatalf("VIPs after reattach = %v, %v; want the VIP written before", vips, err)
	}

	// Detach removes pin and program; a second detach is a no-op.
	if err := DetachPod(pin); err != nil {
		t.Fatalf("DetachPod: %v", err)
	}
	mustNotAttached(t, pin)
	if _, err := os.Stat(pin); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pin still present after DetachPod: %v", err)
	}
	if ids := tcxPrograms(t, ns, hostIf); len(ids) != 0 {
		t.Fatalf("after DetachPod: %d programs attached, want 0", len(ids))
	}
	if err := DetachPod(pin); err != nil {
		t.Fatalf("second DetachPod: %v", err)
	}
}

func TestAttachPodReplacesStalePin(t *testing.T) {
	pinDir := newPinDir(t)
	ns := newNetns(t)
	if1 := ns.addVeth(t, "h1", "p1")
	if2 := ns.addVeth(t, "h2", "p2")
	pin := PodLinkPin(pinDir, "container-2", "eth0")

	ns.do(t, func() error { return AttachPod(pinDir, if1, pin) })
	mustAttached(t, pin, if1)

	// Same pin, other interface: the old attachment goes away.
	ns.do(t, func() error { return AttachPod(pinDir, if2, pin) })
	mustAttached(t, pin, if2)
	if ids := tcxPrograms(t, ns, if1); len(ids) != 0 {
		t.Fatalf("old interface still has %d programs", len(ids))
	}
	if ids := tcxPrograms(t, ns, if2); len(ids) != 1 {
		t.Fatalf("new interface has %d programs, want 1", len(ids))
	}

	// The interface disappears: the pin is no longer a live attachment.
	ns.delLink(t, "h2")
	mustNotAttached(t, pin)
	if3 := ns.addVeth(t, "h3", "p3")
	ns.do(t, func() error { return AttachPod(pinDir, if3, pin) })
	mustAttached(t, pin, if3)

	if err := DetachPod(pin); err != nil {
		t.Fatalf("DetachPod: %v", err)
	}
}

func TestAttachPodErrors(t *testing.T) {
	pinDir := newPinDir(t)
	if err := AttachPod(pinDir, 0, PodLinkPin(pinDir, "c", "eth0")); err == nil {
		t.Fatal("AttachPod with ifindex 0 succeeded")
	}
	// Not a bpffs.
	if err := AttachPod(t.TempDir(), 1, filepath.Join(t.TempDir(), "x")); !errors.Is(err, ErrNoBPFFS) {
		t.Fatalf("AttachPod on a non-bpffs dir: %v, want ErrNoBPFFS", err)
	}
	// A pin that is not a link is not attached.
	bogus := filepath.Join(pinDir, "links", "bogus")
	if err := os.MkdirAll(filepath.Dir(bogus), 0o700); err != nil {
		t.Fatal(err)
	}
	maps, err := OpenMaps(pinDir)
	if err != nil {
		t.Fatalf("OpenMaps: %v", err)
	}
	defer maps.Close()
	if err := maps.m.LbVips.Pin(bogus); err != nil {
		t.Fatalf("pin a map at %s: %v", bogus, err)
	}
	if ok, _, err := PodAttached(bogus); ok || err == nil {
		t.Fatalf("PodAttached on a pinned map = %v, %v; want false with an error", ok, err)
	}
	if err := DetachPod(bogus); err != nil {
		t.Fatalf("DetachPod on a pinned map: %v", err)
	}
}

func TestAttachUplink(t *testing.T) {
	pinDir := newPinDir(t)
	ns := newNetns(t)
	upIf := ns.addVeth(t, "up0", "up1")
	pin := UplinkLinkPin(pinDir, "up0")
	ns.do(t, func() error { return AttachUplink(pinDir, upIf, pin) })
	ok, idx, err := UplinkAttached(pin)
	if err != nil || !ok || idx != upIf {
		t.Fatalf("UplinkAttached = %v, %d, %v; want true, %d", ok, idx, err, upIf)
	}
	if ok, _, _ := PodAttached(pin); ok {
		t.Fatal("PodAttached reports the uplink link as a pod link")
	}
	ids := tcxPrograms(t, ns, upIf)
	if len(ids) != 1 || progName(t, ids[0]) != progNameUplink {
		t.Fatalf("uplink programs = %v", ids)
	}
	if err := DetachUplink(pin); err != nil {
		t.Fatalf("DetachUplink: %v", err)
	}
	if ids := tcxPrograms(t, ns, upIf); len(ids) != 0 {
		t.Fatalf("after DetachUplink %d programs", len(ids))
	}
}

// TestAttachPodConcurrentProcesses runs several CNI-like processes that
// attach at the same time to a fresh pin directory: all must succeed and
// share one set of maps.
func TestAttachPodConcurrentProcesses(t *testing.T) {
	pinDir := newPinDir(t)
	ns := newNetns(t)
	const n = 6
	var cmds []*exec.Cmd
	var ifs []int
	for i := 0; i < n; i++ {
		idx := ns.addVeth(t, fmt.Sprintf("ch%d", i), fmt.Sprintf("cp%d", i))
		ifs = append(ifs, idx)
		cmd := exec.Command("ip", "netns", "exec", ns.name, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%d|%s", envAttach, pinDir, idx, PodLinkPin(pinDir, fmt.Sprintf("c%d", i), "eth0")))
		cmds = append(cmds, cmd)
	}
	for _, c := range cmds {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Errorf("attach process %d: %v", i, err)
		}
	}
	var revnatIDs = map[ebpf.MapID]bool{}
	for i := 0; i < n; i++ {
		mustAttached(t, PodLinkPin(pinDir, fmt.Sprintf("c%d", i), "eth0"), ifs[i])
		ids := tcxPrograms(t, ns, ifs[i])
		if len(ids) != 1 {
			t.Fatalf("veth %d: %d programs", i, len(ids))
		}
		p, err := ebpf.NewProgramFromID(ids[0])
		if err != nil {
			t.Fatal(err)
		}
		info, err := p.Info()
		p.Close()
		if err != nil {
			t.Fatal(err)
		}
		mapIDs, _ := info.MapIDs()
		for _, id := range mapIDs {
			m, err := ebpf.NewMapFromID(id)
			if err != nil {
				t.Fatal(err)
			}
			mi, err := m.Info()
			m.Close()
			if err == nil && mi.Name == "lb_revnat" {
				revnatIDs[id] = true
			}
		}
	}
	if len(revnatIDs) != 1 {
		t.Fatalf("programs use %d different lb_revnat maps, want one shared map", len(revnatIDs))
	}
}

func TestUpdatePrograms(t *testing.T) {
	pinDir := newPinDir(t)
	ns := newNetns(t)
	podIf := ns.addVeth(t, "uh0", "up0")
	upIf := ns.addVeth(t, "uu0", "uu1")
	goneIf := ns.addVeth(t, "ug0", "ug1")
	ns.do(t, func() error {
		if err := AttachPod(pinDir, podIf, PodLinkPin(pinDir, "c", "eth0")); err != nil {
			return err
		}
		if err := AttachPod(pinDir, goneIf, PodLinkPin(pinDir, "gone", "eth0")); err != nil {
			return err
		}
		return AttachUplink(pinDir, upIf, UplinkLinkPin(pinDir, "uu0"))
	})
	ns.delLink(t, "ug0")
	before := map[int]ebpf.ProgramID{podIf: tcxPrograms(t, ns, podIf)[0], upIf: tcxPrograms(t, ns, upIf)[0]}

	n, err := UpdatePrograms(pinDir)
	if err != nil || n != 2 {
		t.Fatalf("UpdatePrograms = %d, %v; want 2 updated", n, err)
	}
	for idx, want := range map[int]string{podIf: progNamePod, upIf: progNameUplink} {
		ids := tcxPrograms(t, ns, idx)
		if len(ids) != 1 || ids[0] == before[idx] || progName(t, ids[0]) != want {
			t.Fatalf("ifindex %d: programs %v (before %d), want one new %s", idx, ids, before[idx], want)
		}
	}
	mustAttached(t, PodLinkPin(pinDir, "c", "eth0"), podIf)
}
