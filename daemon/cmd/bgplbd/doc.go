// Command bgplbd is the bgplb node daemon: one per node (a DaemonSet, or in the lab one
// process per node namespace). main parses flags with cobra and component-base
// (logging flags, ValidateAndApply), validates them into an app.Config and hands over to
// app.Run until SIGINT/SIGTERM. Its version is set with -ldflags "-X main.version=...".
// Everything else lives in daemon/app.
package main
