// Package bench holds the lab benchmarks behind `make bench`: convergence from a
// pod's readiness change to the router's FIB, control-plane scale (10k Services),
// and datapath throughput against plain routing and kube-proxy. Each run replaces its
// Markdown table (machine, date, figures) in RESULTS.md beside this file. The
// benchmarks are tests with the build tag "bench" so that they run only on request.
package bench
