// Package apiservertest runs a real etcd and kube-apiserver for tests and hands back a
// client configuration and a kubeconfig file for them.
//
// Start finds kube-apiserver in $BGPLB_K8S_BIN_DIR (default ~/.cache/bgplb/bin, where
// `make tools` builds it) and etcd in PATH or /usr/bin (Debian's etcd-server, `make
// deps`); a missing binary fails the test, it is never skipped. Both listen on free
// ports of 127.0.0.1, keep their state in a temporary directory and are stopped (by
// PID) when the test ends; their logs are printed when the test failed. The server
// authorizes with RBAC and authenticates one bearer token in group system:masters,
// which the returned configuration uses; privileged pods are allowed (the bgplb
// DaemonSet is privileged).
//
// Tests that use it carry the `apiserver` build tag (make test-apiserver, make
// test-chart).
package apiservertest
