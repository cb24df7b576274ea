// Package runner is the one entry point of the conformance suite: the
// bgplb-conformance command (conformance/cmd/bgplb-conformance) and `go test` in the
// lab (conformance/conformance_test.go) both call Run with a Config.
//
// A Config names the cluster (--kubeconfig), the router (--router frr|bird and
// --router-exec, a command prefix that runs vtysh or birdc where the router is), the
// client outside the cluster (--client-exec, a command prefix that runs curl, ping
// and socat there) and what to run (--profiles, --skip-tests). Faults go through the
// API where the flags allow (APIFaults deletes a node's bgplbd pod); the lab adds its
// own process-level adapters through Run's adapt hook. A test whose adapter is absent
// is skipped with the reason, and a skipped core test makes its profile "partial".
//
// A router adapter that cannot read the router's sessions fails the run before any
// test, naming the command that failed.
package runner
