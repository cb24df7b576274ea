// Package bpf is bgplb's eBPF datapath: the C programs (lb.c), the map ABI
// they share with Go (lb.h), the bpf2go-generated bindings, and the Go API
// the CNI plugin and the daemon use.
//
// Three programs share one set of maps pinned by name in a bpffs directory
// (default /sys/fs/bpf/bgplb):
//
//   - lb_uplink, on ingress of the node's uplinks (AttachUplink, by the
//     daemon): TCP/UDP to a service VIP:port goes to a local backend pod
//     (conntrack, Maglev, DNAT, then by default on through the node's stack,
//     so netfilter and NetworkPolicy apply; bpf_redirect_peer with
//     SetDelivery(DeliveryRedirect), which bypasses them); ICMP echo to a VIP
//     is answered; see lb.c for the full behaviour.
//   - lb_egress, on egress of the node's uplinks (AttachEgressMode, by the
//     daemon): replies of stack-delivered flows, after the node forwarded
//     them, are reverse-NATed to VIP:port and sent towards the router the
//     request came from.
//   - lb_pod, on ingress of each pod's host-side veth (AttachPod, by the CNI
//     plugin): the same for the replies of directly redirected flows, sent
//     straight out of the uplink.
//
// Who calls what: plugins/bgplb uses PodLinkPin, AttachPod, DetachPod and
// PodAttached; daemon/datapath uses OpenMaps and the Maps accessors (the only
// way to write the maps) plus SetDelivery, AttachUplinkMode/AttachEgressMode
// and their Detach functions, and UpdatePrograms
// after an upgrade; bgplbctl reads the maps through Maps.Services,
// Maps.Backends, Maps.Drops and Maps.Flows.
//
// Invariants: maps are created on first load and reused afterwards (so a
// daemon restart or a CNI invocation never resets them); links are pinned, so
// programs stay attached when the process that attached them exits; a pinned
// map whose definition changed (a new ABI) makes loading fail with
// ebpf.ErrMapIncompatible instead of silently mixing layouts. Programs attach with
// tcx (Linux >= 6.6) or legacy TC (clsact + cls_bpf, attach_tc.go) per AttachMode;
// AttachAuto falls back to legacy TC when the kernel refuses tcx. Minimum Linux 5.10.
package bpf
