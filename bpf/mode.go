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

// Delivery says how lb_uplink hands VIP traffic to a local backend pod.
type Delivery string

const (
	// DeliveryStack (default) rewrites the destination in tc and lets the node's stack
	// route the packet to the pod: netfilter (conntrack, FORWARD, POSTROUTING, where
	// NetworkPolicy implementations hook) and the primary CNI's programs on the pod's
	// veth see it, as they see the replies, which lb_egress turns back into VIP
	// replies on the uplink after the stack.
	DeliveryStack Delivery = "stack"
	// DeliveryRedirect hands the packet straight into the pod (bpf_redirect_peer) and
	// the replies straight to the uplink: no second pass through the node's stack, but
	// it BYPASSES NetworkPolicy (and every netfilter rule of the node) for VIP traffic.
	// An explicit opt-in.
	DeliveryRedirect Delivery = "redirect"
)

// ParseDelivery parses "stack" or "redirect"; "" is DeliveryStack.
func ParseDelivery(s string) (Delivery, error) {
	switch d := Delivery(s); d {
	case "":
		return DeliveryStack, nil
	case DeliveryStack, DeliveryRedirect:
		return d, nil
	}
	return "", fmt.Errorf("parse delivery %q: want stack or redirect", s)
}
