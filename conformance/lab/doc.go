// Package lab builds and tears down the one-machine bgplb lab: a real Kubernetes
// control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler), an FRR
// router, a client on a LAN behind it and N nodes on a fabric bridge, each in its own
// network namespace on this host, with the address plan of docs/lab.md.
//
// Who calls it: the bgplb-lab command (conformance/cmd/bgplb-lab) for people, and tests
// (build tag lab) through Up, Open, Down and the namespace helpers (NetNS.Do, Dialer,
// HTTPClient, Exec) and the router reader (Router.JSON).
//
// Invariants:
//   - Every process the lab starts is detached (its own session), logs to
//     <dir>/logs/<name>.log and has its PID in a *.pid file under <dir>; any *.pid file
//     under <dir> (including those the lab kubelet writes under <dir>/nodeN/kubelet/)
//     names a lab process.
//   - Everything the lab creates lives in the lab directory, in the lab's network
//     namespaces (bgplb-router, bgplb-client, bgplb-cp, bgplb-nodeN, bgplb-pod-*) or
//     under /sys/fs/bpf/bgplb-lab; the root namespace's links and routes are never
//     touched. Down removes all of it, is idempotent and works after a crash or a
//     half-finished Up.
//   - The API server is reachable from the root namespace only through the forwarder on
//     127.0.0.1:16443 (<dir>/kubeconfig); processes inside the fabric use
//     <dir>/kubeconfig-fabric (https://198.18.0.254:6443).
package lab
