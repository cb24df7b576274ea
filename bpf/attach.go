//go:build linux

package bpf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// ErrNotSupported is returned (wrapped) when the kernel lacks tcx (Linux < 6.6) and the
// mode is AttachTCX (AttachAuto falls back to legacy tc). It wraps link.ErrNotSupported,
// so errors.Is works with either.
var ErrNotSupported = fmt.Errorf("tcx links not supported by this kernel (need Linux >= 6.6): %w", link.ErrNotSupported)

const (
	progNamePod    = "lb_pod"
	progNameUplink = "lb_uplink"
	progNameEgress = "lb_egress"
)

// sanitize replaces every character outside [A-Za-z0-9_.-] with '_'.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '.', r == '-':
			return r
		}
		return '_'
	}, s)
}

// PodLinkPin returns the bpffs path where the pod program link of an attachment is pinned:
// <pinDir>/links/pod_<containerID>_<ifName> (characters outside [A-Za-z0-9_.-] replaced by '_').
func PodLinkPin(pinDir, containerID, ifName string) string {
	return filepath.Join(pinDir, "links", "pod_"+sanitize(containerID)+"_"+sanitize(ifName))
}

// UplinkLinkPin returns the bpffs path where the uplink program link of an
// interface is pinned: <pinDir>/links/uplink_<ifName> (sanitized like PodLinkPin).
func UplinkLinkPin(pinDir, ifName string) string {
	return filepath.Join(pinDir, "links", "uplink_"+sanitize(ifName))
}

// EgressLinkPin returns the bpffs path where the egress program link of an uplink is
// pinned: <pinDir>/links/egress_<ifName> (sanitized like PodLinkPin).
func EgressLinkPin(pinDir, ifName string) string {
	return filepath.Join(pinDir, "links", "egress_"+sanitize(ifName))
}

// AttachPod is AttachPodMode with AttachAuto.
func AttachPod(pinDir string, hostIfindex int, linkPin string) error {
	_, err := AttachPodMode(pinDir, hostIfindex, linkPin, AttachAuto)
	return err
}

// AttachPodMode loads the collection (maps pinned by name under pinDir, created when
// missing, reused when present), attaches the pod-side program on ingress of the host-side
// veth hostIfindex with mode (AttachAuto: tcx, legacy tc where tcx is refused), and pins
// the attachment at linkPin: the tcx link, or with legacy tc the program (the cls_bpf
// filter has a fixed priority and handle, see tcPodPriority). It returns the mode used.
// Idempotent: an existing pin is replaced (a live attachment on the same interface in
// the same mode gets the program swapped in atomically). The pod program runs after the
// primary CNI's programs on the interface (tcx: at the tail; tc: tcPodPriority).
func AttachPodMode(pinDir string, hostIfindex int, linkPin string, mode AttachMode) (AttachMode, error) {
	// Load only this program (and the maps it uses), not the whole collection.
	var progs struct {
		Prog *ebpf.Program `ebpf:"lb_pod"`
	}
	if err := loadObjects(pinDir, &progs); err != nil {
		return "", err
	}
	defer progs.Prog.Close()
	return attachPinned(progs.Prog, hostIfindex, linkPin, mode, podSlot)
}

// DetachPod removes the attachment pinned at linkPin (tcx link or legacy tc filter) and
// its pin. nil if the pin is gone.
func DetachPod(linkPin string) error {
	return detachPinned(linkPin, podSlot)
}

// PodAttached reports whether linkPin holds a live attachment of our pod program (a tcx
// link, or a pinned program that a legacy tc filter of ours runs) and its ifindex. An
// attachment whose interface was deleted is not live (false, 0, nil).
func PodAttached(linkPin string) (attached bool, ifindex int, err error) {
	return pinnedAttached(linkPin, progNamePod, podSlot)
}

// AttachUplink is AttachUplinkMode with AttachAuto.
func AttachUplink(pinDir string, ifindex int, linkPin string) error {
	_, err := AttachUplinkMode(pinDir, ifindex, linkPin, AttachAuto)
	return err
}

// AttachUplinkMode is AttachPodMode for the uplink program: ingress of the node
// interface ifindex (where routers send VIP traffic), pinned at linkPin (see
// UplinkLinkPin). It runs first on its interface (tcx: at the head; tc:
// tcUplinkPriority). Idempotent like AttachPodMode.
func AttachUplinkMode(pinDir string, ifindex int, linkPin string, mode AttachMode) (AttachMode, error) {
	// Load only this program (and the maps it uses), not the whole collection.
	var progs struct {
		Prog *ebpf.Program `ebpf:"lb_uplink"`
	}
	if err := loadObjects(pinDir, &progs); err != nil {
		return "", err
	}
	defer progs.Prog.Close()
	return attachPinned(progs.Prog, ifindex, linkPin, mode, uplinkSlot)
}

// DetachUplink removes the uplink attachment pinned at linkPin. nil if the pin is gone.
func DetachUplink(linkPin string) error {
	return detachPinned(linkPin, uplinkSlot)
}

// UplinkAttached reports whether linkPin holds a live attachment of our uplink program and its ifindex.
func UplinkAttached(linkPin string) (attached bool, ifindex int, err error) {
	return pinnedAttached(linkPin, progNameUplink, uplinkSlot)
}

// AttachEgressMode is AttachUplinkMode for the egress program: egress of the uplink
// ifindex, where it restores VIP:port on the replies of flows the node's stack delivered
// (the default delivery, see SetDelivery), pinned at linkPin (see EgressLinkPin). It runs
// last on its interface (tcx: at the tail; tc: tcEgressPriority). Idempotent.
func AttachEgressMode(pinDir string, ifindex int, linkPin string, mode AttachMode) (AttachMode, error) {
	var progs struct {
		Prog *ebpf.Program `ebpf:"lb_egress"`
	}
	if err := loadObjects(pinDir, &progs); err != nil {
		return "", err
	}
	defer progs.Prog.Close()
	return attachPinned(progs.Prog, ifindex, linkPin, mode, egressSlot)
}

// DetachEgress removes the egress attachment pinned at linkPin. nil if the pin is gone.
func DetachEgress(linkPin string) error {
	return detachPinned(linkPin, egressSlot)
}

// EgressAttached reports whether linkPin holds a live attachment of our egress program and its ifindex.
func EgressAttached(linkPin string) (attached bool, ifindex int, err error) {
	return pinnedAttached(linkPin, progNameEgress, egressSlot)
}

// tcxTarget returns the interface and attach type of a tcx link (0 when its
// interface is gone), ok=false for any other link type.
func tcxTarget(l link.Link) (ifindex int, attach ebpf.AttachType, prog ebpf.ProgramID, ok bool) {
	info, err := l.Info()
	if err != nil || info.Type != link.TCXType {
		return 0, 0, 0, false
	}
	tcx := info.TCX()
	if tcx == nil {
		return 0, 0, 0, false
	}
	return int(tcx.Ifindex), ebpf.AttachType(tcx.AttachType), info.Program, true
}

func attachPinned(prog *ebpf.Program, ifindex int, linkPin string, mode AttachMode, slot tcSlot) (AttachMode, error) {
	if ifindex <= 0 {
		return "", fmt.Errorf("attach %s to ifindex %d: invalid interface index", linkPin, ifindex)
	}
	if err := os.MkdirAll(filepath.Dir(linkPin), 0o700); err != nil {
		return "", fmt.Errorf("create link pin dir for %s: %w", linkPin, err)
	}
	if mode == "" {
		mode = AttachAuto
	}
	if mode == AttachTC {
		return AttachTC, attachTCPinned(prog, ifindex, linkPin, slot)
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = attachTCXPinnedOnce(prog, ifindex, linkPin, slot); !errors.Is(err, os.ErrExist) {
			break
		}
		// A concurrent attach pinned first; the next round updates its link.
	}
	if err != nil && mode == AttachAuto && tcxRefused(err) {
		if terr := attachTCPinned(prog, ifindex, linkPin, slot); terr != nil {
			return "", fmt.Errorf("attach legacy tc after tcx was refused (%v): %w", err, terr)
		}
		return AttachTC, nil
	}
	if err != nil {
		return "", err
	}
	// Moving from legacy tc to tcx: remove a filter of ours left on the interface.
	removeTCFilter(ifindex, slot, 0)
	return AttachTCX, nil
}

func attachTCXPinnedOnce(prog *ebpf.Program, ifindex int, linkPin string, slot tcSlot) error {
	old, err := link.LoadPinnedLink(linkPin, nil)
	switch {
	case err == nil:
		oldIf, oldAttach, _, ok := tcxTarget(old)
		if ok && oldIf == ifindex && oldAttach == slot.tcxAttach() {
			if err := old.Update(prog); err == nil {
				old.Close()
				return nil
			}
		}
		// Stale (other interface, interface gone, other link type, or
		// update refused): detach it now (releasing the last reference by
		// unpinning detaches only asynchronously) and drop the pin.
		_ = old.Detach() // best effort: fails when the interface is already gone
		old.Close()
		if err := os.Remove(linkPin); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove stale link pin %s: %w", linkPin, err)
		}
	case errors.Is(err, os.ErrNotExist):
	default:
		// Something that is not a link sits at the path (e.g. the program pin of a
		// legacy tc attachment): its filter is removed after the tcx attach, the pin now.
		if err := os.Remove(linkPin); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove unusable link pin %s: %w", linkPin, err)
		}
	}

	l, err := attachTCX(link.TCXOptions{
		Interface: ifindex,
		Program:   prog,
		Attach:    slot.tcxAttach(),
		Anchor:    slot.anchor(),
	})
	if err != nil {
		if errors.Is(err, link.ErrNotSupported) {
			return fmt.Errorf("attach tcx %s to ifindex %d: %w", slot.tcxAttach(), ifindex, ErrNotSupported)
		}
		return fmt.Errorf("attach tcx %s to ifindex %d: %w", slot.tcxAttach(), ifindex, err)
	}
	// Closing our fd after pinning leaves the link attached (the pin holds it);
	// closing it without a pin detaches it again, so a failed pin leaves nothing behind.
	defer l.Close()
	if err := l.Pin(linkPin); err != nil {
		return fmt.Errorf("pin tcx link at %s: %w", linkPin, err)
	}
	return nil
}

func detachPinned(linkPin string, slot tcSlot) error {
	l, err := link.LoadPinnedLink(linkPin, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		// Not a link: a legacy tc attachment (pinned program) or junk.
		return detachTCPinned(linkPin, slot)
	}
	defer l.Close()
	// Detach explicitly so the program stops at once even if another process
	// holds an fd to the link; it fails harmlessly when the interface is gone.
	_ = l.Detach() // best effort: unpinning below releases the link anyway
	if err := l.Unpin(); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("unpin link %s: %w", linkPin, err)
	}
	return nil
}

func pinnedAttached(linkPin, progName string, slot tcSlot) (bool, int, error) {
	l, err := link.LoadPinnedLink(linkPin, nil)
	if errors.Is(err, os.ErrNotExist) {
		return false, 0, nil
	}
	if err != nil {
		if ok, ifindex, terr := tcAttached(linkPin, progName, slot); terr == nil || ok {
			return ok, ifindex, terr
		}
		return false, 0, fmt.Errorf("load pinned link %s: %w", linkPin, err)
	}
	defer l.Close()
	ifindex, attach, progID, ok := tcxTarget(l)
	if !ok || ifindex == 0 || attach != slot.tcxAttach() {
		return false, 0, nil
	}
	if named, err := programNamed(progID, progName); err != nil || !named {
		return false, 0, err
	}
	return true, ifindex, nil
}

// programNamed reports whether program id is called name. Opening a program by ID needs
// CAP_SYS_ADMIN, which bgplbd does not have in its DaemonSet (docs/security.md): without
// it the link, found at a pin path under bgplb's own pin dir that only bgplb writes, is
// taken to hold our program.
func programNamed(id ebpf.ProgramID, name string) (bool, error) {
	prog, err := ebpf.NewProgramFromID(id)
	if errors.Is(err, os.ErrPermission) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("open program %d: %w", id, err)
	}
	defer prog.Close()
	pinfo, err := prog.Info()
	if err != nil {
		return false, fmt.Errorf("program info of %d: %w", id, err)
	}
	return pinfo.Name == name, nil
}

// UpdatePrograms swaps the programs of this build atomically into every live
// link pinned in <pinDir>/links (pod_* links get lb_pod, uplink_* links
// lb_uplink, egress_* links lb_egress), e.g. when an upgraded daemon starts: attachments, maps and
// conntrack state are kept, there is no window without a program. Links
// whose interface is gone are skipped (their owners remove them). It
// returns how many links were updated.
func UpdatePrograms(pinDir string) (int, error) {
	var progs lbPrograms
	if err := loadObjects(pinDir, &progs); err != nil {
		return 0, err
	}
	defer progs.Close()
	dir := filepath.Join(pinDir, "links")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("list link pins in %s: %w", dir, err)
	}
	tcIdx := newTCIndex()
	updated := 0
	for _, e := range entries {
		var prog *ebpf.Program
		switch {
		case strings.HasPrefix(e.Name(), "pod_"):
			prog = progs.LbPod
		case strings.HasPrefix(e.Name(), "uplink_"):
			prog = progs.LbUplink
		case strings.HasPrefix(e.Name(), "egress_"):
			prog = progs.LbEgress
		default:
			continue
		}
		pin := filepath.Join(dir, e.Name())
		l, err := link.LoadPinnedLink(pin, nil)
		if err != nil {
			// Not a link: a legacy tc attachment (or just removed).
			ok, err := updateTCPinned(pin, prog, tcIdx)
			if err != nil {
				return updated, err
			}
			if ok {
				updated++
			}
			continue
		}
		ifindex, _, _, ok := tcxTarget(l)
		if ok && ifindex != 0 {
			err = l.Update(prog)
		}
		l.Close()
		if !ok || ifindex == 0 {
			continue
		}
		if err != nil {
			return updated, fmt.Errorf("update program of link %s: %w", pin, err)
		}
		updated++
	}
	return updated, nil
}
