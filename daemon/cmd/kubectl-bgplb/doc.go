// Command kubectl-bgplb is the kubectl plugin `kubectl bgplb`: bgplb's cluster view from
// the API server (services, sessions/peers, pools, doctor) and node-local detail by
// running bgplbctl in a node's bgplbd pod (node NODE ...). Installed anywhere on PATH,
// kubectl finds it (`kubectl plugin list`). The commands live in daemon/clusterview and
// are also bgplbctl subcommands; docs/cli.md documents them and their exit codes.
package main
