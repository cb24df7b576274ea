// Package serviceclass implements the ServiceClass PreFilter plugin: docs/design.md decision
// 1. A Service is in scope when it is type LoadBalancer, its spec.loadBalancerClass equals
// the configured class (or is unset and defaultClass is on), and it has at least one
// ingress IP. Anything else is out of scope for this node: no announcement and no
// datapath entries.
package serviceclass
