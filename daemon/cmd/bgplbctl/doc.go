// Command bgplbctl inspects and explains bgplb on a node:
//
//   - status: this node's BGP sessions, prefix counts and errors (its BGPNodeState), the
//     prefixes its speaker originates with the peers each goes to and the endpoints the
//     CNI plugin registered (both over the daemon's socket), and the VIPs marked in the
//     datapath;
//   - lb list: the datapath's frontend → backend table with packet/byte counters, read
//     from the pinned eBPF maps (like cilium bpf lb list);
//   - router-config frr|bird|opnsense|vyos|routeros: the router side (listen range over
//     the node subnet, multipath, import only pool host routes and, when the nodes export
//     them, their pod CIDRs; export nothing). The BIRD output is a snippet to include from
//     an existing bird.conf (Debian's default included), or a whole one with --standalone;
//     FRR and BIRD outputs are checked by the routers' own parsers in the tests, VyOS and
//     RouterOS against reviewed golden files;
//   - doctor: bpffs, daemon socket, CNI chaining, uplink program and BGP session checks;
//   - install-cni / uninstall-cni: one pass of what bgplbd's chaining loop does (copy the
//     plugin and chain it last in the runtime's conflist; --datapath=false unchains), and
//     its removal by hand (the conflist entry, the binary and the pinned programs), e.g.
//     on a node that was down when the DaemonSet was deleted.
//
// It also carries the cluster view of `kubectl bgplb` (daemon/clusterview): services,
// sessions (peers), pools, cluster-doctor and node. status, lb list and doctor take
// -o table|json|yaml; doctor exits 0 ok, 1 warnings, 2 failures (docs/cli.md).
//
// Commands that read the cluster use --kubeconfig (or in-cluster config); the others work
// on the node alone.
package main
