// Command bgplb is a chained CNI plugin (CNI type "bgplb", spec versions 0.3.0–1.1.0). It
// runs after the node's primary CNI plugin and, for every pod attachment:
//
//   - ADD: finds the pod's host-side veth (from prevResult and the container netns),
//     attaches bgplb's pod-side eBPF program to it with tcx (package bpf; the link is pinned
//     in bpffs so it outlives this process), writes a durable endpoint record
//     (api.RecordStore), tells bgplbd over its unix socket (best effort: a daemon that is
//     down adopts the record when it starts), and prints prevResult unchanged.
//   - DEL: detaches the program, deletes the record and unregisters the endpoint. Idempotent;
//     succeeds when the netns, prevResult, pin, record or daemon are gone.
//   - CHECK: fails when the program is not attached to the pod's host veth, the record is
//     missing, or the daemon is unreachable or does not know the endpoint.
//   - STATUS: fails with code 50 when bgplbd is unreachable.
//   - GC: removes pins, records and registrations of attachments that are not listed in
//     cni.dev/valid-attachments (or the legacy cni.dev/attachments).
//
// The plugin writes nothing but its result (or a CNI error) to stdout; debug logs go to the
// optional logFile. It imports only package bpf and daemon/registry/api. Error codes are
// listed in errors.go and README.md.
package main
