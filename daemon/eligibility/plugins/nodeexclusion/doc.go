// Package nodeexclusion implements the NodeExclusion Filter plugin: a node labelled
// node.kubernetes.io/exclude-from-external-load-balancers (any value), with condition
// NetworkUnavailable=True, not Ready, or unknown to the informer does not announce.
package nodeexclusion
