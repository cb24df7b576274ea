// Package kubelet is the lab's stand-in for a kubelet: one per lab node, run
// as `bgplb-lab kubelet ...` inside the node's network namespace.
//
// It registers its Node (addresses, pod CIDRs, capacity, a Ready condition) and
// keeps the Ready heartbeat and the kube-node-lease Lease fresh, so the real
// kube-scheduler binds pods to it and kube-proxy sees its InternalIP. The lab
// runs no node lifecycle controller, so the kubelet itself removes the
// node.kubernetes.io/not-ready taint the API server's admission puts on every
// new Node (otherwise nothing would ever be scheduled). For every
// pod bound to the node it does what a container runtime and kubelet would do,
// with the project's test server standing in for every container:
//
//  1. write a state record (StateDir/pods/<uid>.json) before touching the kernel,
//     so every resource it creates can be found again after a crash;
//  2. create the pod network namespace bgplb-pod-<node>-<short id> under
//     /run/netns (via `ip netns add`), bring lo up;
//  3. run CNI ADD with libcni and the first *.conflist of CNIConfDir, exactly as
//     a runtime would (ContainerID derived from the pod UID, IfName eth0, the
//     K8S_POD_* args), results cached in CNICacheDir;
//  4. start `podserver` in the namespace (detached, own session, log and PID file
//     in StateDir/pods), listening on every declared containerPort;
//  5. probe GET /ready of the first pod IP and first TCP port every 500 ms
//     (Ready after 1 success, not ready after 3 failures, so a POST /ready false
//     shows in the EndpointSlice after about 1.5 s) and patch the Pod status
//     (phase, IPs, conditions, containerStatuses) when it changes; a process
//     that exits is started again (restartCount grows);
//  6. on graceful deletion: SIGTERM once (the time is recorded, so a restarted
//     kubelet continues the same grace period), keep probing until the process
//     exits or the grace period ends (then SIGKILL), CNI DEL, delete the
//     namespace and the state, and finally delete the Pod with grace 0 and a
//     UID precondition.
//
// Host-network pods get no namespace and no CNI call: their process runs in the
// node namespace and their IPs are the node's.
//
// Setup failures (a CNI ADD error, say) are reported like a real kubelet does:
// the container waits with reason ContainerCreating and the error as message,
// Ready is False, and setup is retried with exponential backoff.
//
// Restart safety: on start the kubelet reads its state records; a pod that still
// exists with a live process and namespace is adopted, a pod that no longer
// exists has its process, network and namespace cleaned up. When Run returns
// (its context is done) pod processes keep running; the lab's teardown kills
// them through their PID files ("<pid>\n<executable>\n", the lab's format).
//
// Not provided: a kubelet API (no kubectl logs/exec; a pod's output is in
// StateDir/pods/<uid>.log), volumes, init containers, probes other than the
// fixed readiness probe, CNI CHECK/GC calls.
//
// Mount namespaces: `ip netns exec` gives the process it starts a private
// mount namespace whose mounts do not propagate back. Pod namespaces made from
// there would be invisible to everyone else, so when the kubelet's parent lives
// in a different mount namespace, pod namespaces are added and deleted from
// the parent's mount namespace (through nsenter), from where they propagate to
// every namespace, the kubelet's included.
//
// No code here switches network namespaces in-process: namespaces are entered
// only by the `ip`/`nsenter` commands and CNI plugins the kubelet executes.
package kubelet
