package bpf

import "fmt"

// AttachMode says how programs are attached to interfaces.
type AttachMode string

const (
	// AttachAuto uses tcx and falls back to legacy tc when the kernel refuses tcx.
	AttachAuto AttachMode = "auto"
	// AttachTCX uses tcx links only (Linux >= 6.6).
	AttachTCX AttachMode = "tcx"
	// AttachTC uses a clsact qdisc and cls_bpf direct-action filters (Linux >= 5.10 for
	// the programs' helpers; the hook itself is much older).
	AttachTC AttachMode = "tc"
)

// ParseAttachMode parses "auto", "tcx" or "tc"; "" is AttachAuto.
func ParseAttachMode(s string) (AttachMode, error) {
	switch m := AttachMode(s); m {
	case "":
		return AttachAuto, nil
	case AttachAuto, AttachTCX, AttachTC:
		return m, nil
	}
	return "", fmt.Errorf("parse attach mode %q: want auto, tcx or tc", s)
}
