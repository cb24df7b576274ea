// Package metrics defines the daemon's own Prometheus metrics (component-base metrics,
// served from the legacy registry on /metrics): BGP sessions up, prefixes announced,
// per-Service reconcile duration, convergence (input change → route applied) and LB-IPAM
// allocations. Register is idempotent; daemon/app calls it once at start. Packages that
// produce a metric import this package and update it; nobody else registers these names.
package metrics
