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

// ErrNotSupported is returned (wrapped) when the kernel lacks tcx (Linux < 6.6).
// It wraps link.ErrNotSupported, so errors.Is works with either.
var ErrNotSupported = fmt.Errorf("tcx links not supported by this kernel (need Linux >= 6.6): %w", link.ErrNotSupported)

const (
	progNamePod    = "lb_pod"
	progNameUplink = "lb_uplink"
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

// AttachPod loads the collection (maps pinned by name under pinDir, created when missing,
// reused when present), attaches the pod-side program with tcx on ingress of the host-side
// veth hostIfindex, and pins the link at linkPin. Idempotent: an existing pin is replaced
// (a live link on the same interface gets the program swapped in atomically).
func AttachPod(pinDir string, hostIfindex int, linkPin string) error {
	// Load only this program (and the maps it uses), not the whole collection.
	var progs struct {
		Prog *ebpf.Program `ebpf:"lb_pod"`
	}
	if err := loadObjects(pinDir, &progs); err != nil {
		return err
	}
	defer progs.Prog.Close()
	return attachPinned(progs.Prog, hostIfindex, linkPin)
}

// DetachPod unpins and closes the link at linkPin (detaching the program). nil if the pin is gone.
func DetachPod(linkPin string) error {
	return detachPinned(linkPin)
}

// PodAttached reports whether linkPin holds a live tcx link to our pod program and its ifindex.
// A link whose interface was deleted is not live (false, 0, nil).
func PodAttached(linkPin string) (attached bool, ifindex int, err error) {
	return pinnedAttached(linkPin, progNamePod)
}

// AttachUplink is AttachPod for the uplink program: tcx ingress of the node
// interface ifindex (where routers send VIP traffic), link pinned at linkPin
// (see UplinkLinkPin). Idempotent like AttachPod.
func AttachUplink(pinDir string, ifindex int, linkPin string) error {
	// Load only this program (and the maps it uses), not the whole collection.
	var progs struct {
		Prog *ebpf.Program `ebpf:"lb_uplink"`
	}
	if err := loadObjects(pinDir, &progs); err != nil {
		return err
	}
	defer progs.Prog.Close()
	return attachPinned(progs.Prog, ifindex, linkPin)
}

// DetachUplink unpins and detaches the uplink link at linkPin. nil if the pin is gone.
func DetachUplink(linkPin string) error {
	return detachPinned(linkPin)
}

// UplinkAttached reports whether linkPin holds a live tcx link to our uplink program and its ifindex.
func UplinkAttached(linkPin string) (attached bool, ifindex int, err error) {
	return pinnedAttached(linkPin, progNameUplink)
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

func attachPinned(prog *ebpf.Program, ifindex int, linkPin string) error {
	if ifindex <= 0 {
		return fmt.Errorf("attach %s to ifindex %d: invalid interface index", linkPin, ifindex)
	}
	if err := os.MkdirAll(filepath.Dir(linkPin), 0o700); err != nil {
		return fmt.Errorf("create link pin dir for %s: %w", linkPin, err)
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = attachPinnedOnce(prog, ifindex, linkPin); !errors.Is(err, os.ErrExist) {
			return err
		}
		// A concurrent attach pinned first; the next round updates its link.
	}
	return err
}

func attachPinnedOnce(prog *ebpf.Program, ifindex int, linkPin string) error {
	old, err := link.LoadPinnedLink(linkPin, nil)
	switch {
	case err == nil:
		oldIf, oldAttach, _, ok := tcxTarget(old)
		if ok && oldIf == ifindex && oldAttach == ebpf.AttachTCXIngress {
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
		// Something that is not a link sits at the path: replace it.
		if err := os.Remove(linkPin); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove unusable link pin %s: %w", linkPin, err)
		}
	}

	l, err := link.AttachTCX(link.TCXOptions{
		Interface: ifindex,
		Program:   prog,
		Attach:    ebpf.AttachTCXIngress,
		// Run before other tcx programs (e.g. the primary CNI's): ours only
		// claim VIP traffic and tracked replies and pass everything else on.
		Anchor: link.Head(),
	})
	if err != nil {
		if errors.Is(err, link.ErrNotSupported) {
			return fmt.Errorf("attach tcx ingress to ifindex %d: %w", ifindex, ErrNotSupported)
		}
		return fmt.Errorf("attach tcx ingress to ifindex %d: %w", ifindex, err)
	}
	// Closing our fd after pinning leaves the link attached (the pin holds it);
	// closing it without a pin detaches it again, so a failed pin leaves nothing behind.
	defer l.Close()
	if err := l.Pin(linkPin); err != nil {
		return fmt.Errorf("pin tcx link at %s: %w", linkPin, err)
	}
	return nil
}

func detachPinned(linkPin string) error {
	l, err := link.LoadPinnedLink(linkPin, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		// Not a loadable link: remove whatever is there.
		if rerr := os.Remove(linkPin); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			return fmt.Errorf("remove link pin %s: %w", linkPin, rerr)
		}
		return nil
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

func pinnedAttached(linkPin, progName string) (bool, int, error) {
	l, err := link.LoadPinnedLink(linkPin, nil)
	if errors.Is(err, os.ErrNotExist) {
		return false, 0, nil
	}
	if err != nil {
		return false, 0, fmt.Errorf("load pinned link %s: %w", linkPin, err)
	}
	defer l.Close()
	ifindex, attach, progID, ok := tcxTarget(l)
	if !ok || ifindex == 0 || attach != ebpf.AttachTCXIngress {
		return false, 0, nil
	}
	prog, err := ebpf.NewProgramFromID(progID)
	if err != nil {
		return false, 0, fmt.Errorf("open program %d of link %s: %w", progID, linkPin, err)
	}
	defer prog.Close()
	pinfo, err := prog.Info()
	if err != nil {
		return false, 0, fmt.Errorf("program info of link %s: %w", linkPin, err)
	}
	if pinfo.Name != progName {
		return false, 0, nil
	}
	return true, ifindex, nil
}

// UpdatePrograms swaps the programs of this build atomically into every live
// link pinned in <pinDir>/links (pod_* links get lb_pod, uplink_* links
// lb_uplink), e.g. when an upgraded daemon starts: attachments, maps and
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
	updated := 0
	for _, e := range entries {
		var prog *ebpf.Program
		switch {
		case strings.HasPrefix(e.Name(), "pod_"):
			prog = progs.LbPod
		case strings.HasPrefix(e.Name(), "uplink_"):
			prog = progs.LbUplink
		default:
			continue
		}
		pin := filepath.Join(dir, e.Name())
		l, err := link.LoadPinnedLink(pin, nil)
		if err != nil {
			continue // not a link (or just removed): nothing to update
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
