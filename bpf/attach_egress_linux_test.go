//go:build linux

package bpf

import (
	"fmt"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
)

// TestAttachEgress: lb_egress goes on the uplink's egress hook in both modes (tcx egress;
// tc: clsact egress, priority tcEgressPriority), EgressAttached finds it, UpdatePrograms
// swaps it (egress_* pins get lb_egress), moving between modes leaves one attachment,
// and DetachEgress removes it. The uplink program on the same interface is untouched.
func TestAttachEgress(t *testing.T) {
	pinDir := newPinDir(t)
	ns := newNetns(t)
	upIf := ns.addVeth(t, "u0", "r0")
	upPin, egPin := UplinkLinkPin(pinDir, "u0"), EgressLinkPin(pinDir, "u0")
	egressState := func() (tcx []ebpf.ProgramID, tc []*netlink.BpfFilter) {
		ns.do(t, func() error {
			res, err := link.QueryPrograms(link.QueryOptions{Target: upIf, Attach: ebpf.AttachTCXEgress})
			if err != nil {
				return err
			}
			for _, p := range res.Programs {
				tcx = append(tcx, p.ID)
			}
			l, err := netlink.LinkByIndex(upIf)
			if err != nil {
				return err
			}
			fs, _ := netlink.FilterList(l, netlink.HANDLE_MIN_EGRESS) // no clsact: no filters
			for _, f := range fs {
				if bf, ok := f.(*netlink.BpfFilter); ok && bf.Handle == tcHandle {
					tc = append(tc, bf)
				}
			}
			return nil
		})
		return tcx, tc
	}
	attached := func() {
		t.Helper()
		ns.do(t, func() error {
			ok, idx, err := EgressAttached(egPin)
			if err == nil && (!ok || idx != upIf) {
				err = fmt.Errorf("EgressAttached = %v, %d; want true, %d", ok, idx, upIf)
			}
			return err
		})
	}
	for _, mode := range []AttachMode{AttachTCX, AttachTC, AttachTCX} {
		ns.do(t, func() error { _, err := AttachUplinkMode(pinDir, upIf, upPin, mode); return err })
		ns.do(t, func() error { _, err := AttachEgressMode(pinDir, upIf, egPin, mode); return err })
		tcx, tc := egressState()
		switch {
		case mode == AttachTCX && (len(tcx) != 1 || len(tc) != 0 || progName(t, tcx[0]) != progNameEgress):
			t.Fatalf("tcx: egress programs %v, filters %+v", tcx, tc)
		case mode == AttachTC && (len(tcx) != 0 || len(tc) != 1 || tc[0].Priority != tcEgressPriority):
			t.Fatalf("tc: egress programs %v, filters %+v", tcx, tc)
		}
		attached()
		ns.do(t, func() error {
			n, err := UpdatePrograms(pinDir)
			if err == nil && n != 2 {
				err = fmt.Errorf("UpdatePrograms updated %d links, want 2 (uplink, egress)", n)
			}
			return err
		})
		attached()
		ns.do(t, func() error {
			ok, _, err := UplinkAttached(upPin)
			if err == nil && !ok {
				err = fmt.Errorf("uplink program gone after the egress attach (%s)", mode)
			}
			return err
		})
	}
	ns.do(t, func() error { return DetachEgress(egPin) })
	if tcx, tc := egressState(); len(tcx) != 0 || len(tc) != 0 {
		t.Fatalf("after DetachEgress: programs %v, filters %+v", tcx, tc)
	}
}
