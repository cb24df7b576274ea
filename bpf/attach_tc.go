//go:build linux

package bpf

// Legacy TC attachment, for kernels without tcx (Linux < 6.6; tcx is used where it
// exists). The programs are the same; only the hook differs:
//
//   - tcx: a bpf_link per interface, pinned at the attachment's pin path.
//   - legacy tc: a clsact qdisc (added when missing, shared with other users, never
//     removed by us) and a cls_bpf filter in direct-action mode on its ingress hook,
//     with a fixed handle (tcHandle) and a fixed priority per role (tcPodPriority,
//     tcUplinkPriority) and the pin's base name as the filter name. The program is
//     pinned at the attachment's pin path, so the attachment survives the process that
//     made it, restart adoption finds it (PodAttached: pinned program + a filter with our
//     handle, priority and name) and DEL removes exactly our filter.
//
// Programs in a tc chain run by priority (lower first); a direct-action program that
// returns TC_ACT_OK ends the chain, one that returns TC_ACT_UNSPEC passes the packet to
// the next filter. Ours return TC_ACT_UNSPEC for traffic that is not theirs.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

const (
	// tcHandle is the handle of every cls_bpf filter bgplb adds ("b61b": bgplb).
	tcHandle = 0xb61b
	// tcPodPriority places the pod program after the primary CNI's filters on the host
	// veth: Cilium's legacy filters use priority 1, and filters added without a priority
	// (tc's default, e.g. by scripts and most CNIs) get 0xc000 (49152) and below.
	tcPodPriority = 0xc100
	// tcUplinkPriority places the uplink program before filters added with tc's default
	// priority, like tcx's head: it claims only VIP traffic and passes the rest on.
	tcUplinkPriority = 0x100
	// tcEgressPriority places the egress program (uplink egress) after the other
	// filters there, like tcx's tail: it restores VIP:port on replies last.
	tcEgressPriority = 0xc200
)

// tcSlot is the role of an attachment: where in the interface's chain it goes.
type tcSlot int

const (
	podSlot    tcSlot = iota // ingress of a pod's host veth
	uplinkSlot               // ingress of an uplink
	egressSlot               // egress of an uplink
)

func (s tcSlot) priority() uint16 {
	switch s {
	case uplinkSlot:
		return tcUplinkPriority
	case egressSlot:
		return tcEgressPriority
	}
	return tcPodPriority
}

// anchor is the tcx position: the uplink program first, the pod and egress programs last
// (after the primary CNI's programs, so their policy sees the packet first).
func (s tcSlot) anchor() link.Anchor {
	if s == uplinkSlot {
		return link.Head()
	}
	return link.Tail()
}

// tcxAttach is the slot's tcx attach type.
func (s tcSlot) tcxAttach() ebpf.AttachType {
	if s == egressSlot {
		return ebpf.AttachTCXEgress
	}
	return ebpf.AttachTCXIngress
}

// parent is the slot's clsact hook.
func (s tcSlot) parent() uint32 {
	if s == egressSlot {
		return netlink.HANDLE_MIN_EGRESS
	}
	return netlink.HANDLE_MIN_INGRESS
}

// slotOfPriority is the slot whose filters have priority prio.
func slotOfPriority(prio uint16) tcSlot {
	switch prio {
	case tcUplinkPriority:
		return uplinkSlot
	case tcEgressPriority:
		return egressSlot
	}
	return podSlot
}

// attachTCX is link.AttachTCX; tests replace it to make the kernel "refuse" tcx.
var attachTCX = link.AttachTCX

// errnoENOTSUPP is the kernel's internal ENOTSUPP (524), which bpf(2) can leak.
const errnoENOTSUPP = syscall.Errno(524)

// tcxRefused reports whether err means "this kernel cannot do tcx here" (as opposed to
// e.g. a permission problem), so AttachAuto falls back to legacy tc.
func tcxRefused(err error) bool {
	return errors.Is(err, link.ErrNotSupported) || errors.Is(err, unix.EINVAL) ||
		errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, errnoENOTSUPP)
}

func slotFilter(ifindex int, slot tcSlot) netlink.FilterAttrs {
	return netlink.FilterAttrs{
		LinkIndex: ifindex,
		Parent:    slot.parent(),
		Handle:    tcHandle,
		Priority:  slot.priority(),
		Protocol:  unix.ETH_P_ALL,
	}
}

// attachTCPinned attaches prog with clsact + cls_bpf on the slot's hook of ifindex and pins
// prog at linkPin, replacing a tcx link or program pinned there before.
func attachTCPinned(prog *ebpf.Program, ifindex int, linkPin string, slot tcSlot) error {
	if l, err := link.LoadPinnedLink(linkPin, nil); err == nil {
		// Moving from tcx to legacy tc: drop the link first.
		_ = l.Detach() // best effort: fails when the interface is already gone
		l.Close()
	}
	qdisc := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: ifindex,
			Handle:    netlink.MakeHandle(0xffff, 0),
			Parent:    netlink.HANDLE_CLSACT,
		},
		QdiscType: "clsact",
	}
	if err := netlink.QdiscAdd(qdisc); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add clsact qdisc to ifindex %d: %w", ifindex, err)
	}
	filter := &netlink.BpfFilter{
		FilterAttrs:  slotFilter(ifindex, slot),
		Fd:           prog.FD(),
		Name:         filepath.Base(linkPin),
		DirectAction: true,
	}
	// Replace is atomic: a live filter of ours gets the new program without a gap.
	if err := netlink.FilterReplace(filter); err != nil {
		return fmt.Errorf("add tc filter (priority %#x) to ifindex %d: %w", slot.priority(), ifindex, err)
	}
	if err := os.Remove(linkPin); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove old pin %s: %w", linkPin, err)
	}
	if err := prog.Pin(linkPin); err != nil {
		_ = netlink.FilterDel(filter) // best effort: nothing may stay without a pin
		return fmt.Errorf("pin program of tc filter at %s: %w", linkPin, err)
	}
	return nil
}

// tcAttachment is one of our cls_bpf filters found on an interface.
type tcAttachment struct {
	ifindex  int
	priority uint16
	progID   ebpf.ProgramID
}

// tcIndex finds our filters by name (the pin's base name), scanning every interface of
// the network namespace once, on first use.
type tcIndex struct {
	byName map[string]tcAttachment // filter name -> where it is
	err    error
}

func newTCIndex() *tcIndex { return &tcIndex{} }

func (x *tcIndex) lookup(name string) (tcAttachment, bool, error) {
	if x.byName == nil && x.err == nil {
		x.byName, x.err = scanTCFilters()
	}
	a, ok := x.byName[name]
	return a, ok, x.err
}

func scanTCFilters() (map[string]tcAttachment, error) {
	links, err := netlinksafe.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	out := map[string]tcAttachment{}
	for _, l := range links {
		for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
			filters, err := netlinksafe.FilterList(l, parent)
			if err != nil {
				continue // no clsact (or the interface just went): nothing of ours there
			}
			for _, f := range filters {
				bf, ok := f.(*netlink.BpfFilter)
				if !ok || bf.Handle != tcHandle {
					continue
				}
				// Ours: one of our priorities, on that priority's hook.
				if slot := slotOfPriority(bf.Priority); slot.priority() != bf.Priority || slot.parent() != parent {
					continue
				}
				out[bf.Name] = tcAttachment{ifindex: l.Attrs().Index, priority: bf.Priority, progID: ebpf.ProgramID(bf.Id)}
			}
		}
	}
	return out, nil
}

// tcAttached is pinnedAttached for a pinned program: live when a filter of ours named
// after the pin, in slot's priority, runs that program.
func tcAttached(linkPin, progName string, slot tcSlot) (bool, int, error) {
	prog, err := ebpf.LoadPinnedProgram(linkPin, nil)
	if err != nil {
		return false, 0, fmt.Errorf("load pinned program %s: %w", linkPin, err)
	}
	defer prog.Close()
	info, err := prog.Info()
	if err != nil {
		return false, 0, fmt.Errorf("program info of %s: %w", linkPin, err)
	}
	id, _ := info.ID()
	if info.Name != progName {
		return false, 0, nil
	}
	a, ok, err := newTCIndex().lookup(filepath.Base(linkPin))
	if err != nil {
		return false, 0, err
	}
	if !ok || a.priority != slot.priority() || a.progID != id {
		return false, 0, nil
	}
	return true, a.ifindex, nil
}

// detachTCPinned removes our filter named after linkPin (if its interface still exists)
// and the pin.
func detachTCPinned(linkPin string, slot tcSlot) error {
	if a, ok, err := newTCIndex().lookup(filepath.Base(linkPin)); err == nil && ok && a.priority == slot.priority() {
		if err := netlink.FilterDel(&netlink.BpfFilter{FilterAttrs: slotFilter(a.ifindex, slot)}); err != nil &&
			!errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("delete tc filter of %s on ifindex %d: %w", linkPin, a.ifindex, err)
		}
	}
	if err := os.Remove(linkPin); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove pin %s: %w", linkPin, err)
	}
	return nil
}

// removeTCFilter deletes a filter of ours in slot on ifindex, if there is one (best
// effort: used when an interface moves from legacy tc to tcx).
func removeTCFilter(ifindex int, slot tcSlot, _ ebpf.ProgramID) {
	_ = netlink.FilterDel(&netlink.BpfFilter{FilterAttrs: slotFilter(ifindex, slot)}) // ENOENT is the common case
}

// updateTCPinned swaps prog into the legacy tc attachment pinned at pin (filter replace
// is atomic) and re-pins. It reports false when pin is not a live tc attachment.
func updateTCPinned(pin string, prog *ebpf.Program, idx *tcIndex) (bool, error) {
	old, err := ebpf.LoadPinnedProgram(pin, nil)
	if err != nil {
		return false, nil // not a program either (or just removed): nothing to update
	}
	old.Close()
	a, ok, err := idx.lookup(filepath.Base(pin))
	if err != nil {
		return false, fmt.Errorf("update program of %s: %w", pin, err)
	}
	if !ok {
		return false, nil // interface gone: the owner removes the pin
	}
	slot := slotOfPriority(a.priority)
	if err := attachTCPinned(prog, a.ifindex, pin, slot); err != nil {
		return false, fmt.Errorf("update program of %s: %w", pin, err)
	}
	return true, nil
}
