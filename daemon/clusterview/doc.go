// Package clusterview is the cluster-wide half of bgplb's CLI, shared by `kubectl bgplb`
// (daemon/cmd/kubectl-bgplb) and `bgplbctl` (daemon/cmd/bgplbctl): it reads the API
// server only and never a node's socket or BPF pins.
//
//   - services: each bgplb Service with its VIPs, the pools holding them, whether it is
//     announced, by which nodes (from the bgplb.io/Announced condition, which names up
//     to a few nodes and counts the rest) and why not when it is not;
//   - sessions (alias peers): every node's BGP sessions from its BGPNodeState;
//   - pools: each LoadBalancerIPPool with its blocks, readiness and usage (from the
//     status the LB-IPAM leader writes) and the Services holding its addresses;
//   - doctor: cluster checks with severities (DaemonSet, allocator Deployment, peers,
//     sessions, pools, Services); exit code 0 ok, 1 warnings, 2 failures;
//   - node NODE [bgplbctl args]: runs `bgplbctl <args>` in that node's bgplbd pod
//     through the API server's exec subresource (client-go remotecommand, WebSocket
//     with SPDY fallback, like kubectl exec), for the node-local views (status, lb list,
//     doctor).
//
// Every listing prints as -o table (default), json or yaml; the JSON and YAML shapes are
// the exported types of this package (a List with kind, apiVersion and items) and only
// grow. Exit codes are ExitError values; main turns them into the process status.
package clusterview
