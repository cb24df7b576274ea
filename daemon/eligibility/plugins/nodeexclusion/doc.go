// Package nodeexclusion implements the NodeExclusion Filter plugin: a node labelled
// node.kubernetes.io/exclude-from-external-load-balancers (any value), with condition
// NetworkUnavailable=True, being deleted, or unknown to the informer does not announce.
// Ready is not a reason: a late kubelet heartbeat (Ready=Unknown) must not withdraw VIPs.
package nodeexclusion
