// Command bgplbctl inspects and explains bgplb on a node:
//
//   - status: this node's BGP sessions and announced prefixes (its BGPNodeState), the
//     endpoints the CNI plugin registered (over the daemon's socket) and the VIPs marked in
//     the datapath;
//   - lb list: the datapath's frontend → backend table with packet/byte counters, read
//     from the pinned eBPF maps (like cilium bpf lb list);
//   - router-config frr|bird|opnsense: the router side (listen range over the node
//     subnet, multipath, import only pool host routes, export nothing);
//   - doctor: bpffs, daemon socket, CNI chaining, uplink program and BGP session checks;
//   - install-cni: install and chain the plugin once (the DaemonSet's init container;
//     --datapath=false unchains); bgplbd --cni-conf-dir keeps it chained afterwards;
//   - uninstall-cni: unchain (the primary's conflist comes back byte for byte), remove the
//     plugin binary and bgplb's bpffs pins (docs/design.md, "CNI chaining").
//
// Commands that read the cluster use --kubeconfig (or in-cluster config); the others work
// on the node alone.
package main
