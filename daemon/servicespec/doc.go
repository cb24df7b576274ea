// Package servicespec reads what a Service asks of the load balancer beyond its IP, once,
// in one place, for the announcer (which programs the datapath) and the LB-IPAM leader
// (which reports problems in the Service's status).
//
// Source ranges follow Kubernetes: spec.loadBalancerSourceRanges when it is non-empty,
// else the legacy annotation service.beta.kubernetes.io/load-balancer-source-ranges
// (comma-separated), every entry with surrounding whitespace trimmed — the rule of
// k8s.io/cloud-provider's service helper GetLoadBalancerSourceRanges and of the API
// server's validation. Like kube-proxy (pkg/proxy/serviceport.go newBaseServiceInfo), the
// ranges apply per address family: a family without any range is not restricted, and a
// /0 allows the whole family.
//
// Unlike kube-proxy, which logs and skips an entry it cannot parse (so a list of only bad
// entries opens the Service to everyone), an entry this package cannot parse — with
// net/netip's strict syntax: "010.0.0.0/8" (leading zero), "10.0.0.0/33", an empty
// element, a zone — fails closed: the Service's VIPs accept no client until it is fixed
// (decision 9 of docs/design.md). The caller reports Invalid in a condition and an event.
// So does a Service whose ranges × ports × IP families exceed MaxSourceRangeEntries (its
// share of the source-range map every Service uses): it fails closed too (Exceeded).
package servicespec
