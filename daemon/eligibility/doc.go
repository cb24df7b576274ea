// Package eligibility decides, for one node, whether that node should announce a
// LoadBalancer Service over BGP, which of its local endpoints the datapath may use, and
// with what weight. It is shaped like the kube-scheduler framework: plugins implement
// optional PreFilter, Filter and Score extension points, a Registry maps plugin names to
// factories, and a Runner built from a Profile runs the enabled plugins in order.
//
// The unit of evaluation is "should THIS node announce Service S": an Input carries the
// Service, the typed views of its EndpointSlices (package endpoints, the form the
// daemon's endpoint cache holds) and this node's Node object; a Handle gives plugins access to
// the node name, the CNI endpoint registry and the BGP session state (both interfaces, so
// this package depends on neither the registry nor the BGP implementation).
//
// Outcome semantics (the Runner's contract):
//   - a PreFilter rejection means the Service is out of scope for this node entirely (not
//     ours, no ingress IP): no announcement and no datapath endpoints;
//   - a Filter rejection means "do not announce", but the Decision still carries the
//     endpoint selection so the datapath keeps serving flows that arrive while the
//     withdrawal converges;
//   - Score plugins are summed with their profile weights into Decision.Weight.
//
// SelectEndpoints is the single predicate of docs/design.md decisions 2 and 3 (eligible
// endpoints, traffic policy). The TrafficPolicy plugin and the datapath both call it, so
// the advertiser and the datapath can never disagree.
//
// Callers: daemon/app builds a Runner from the daemon configuration (daemon/config);
// the per-Service worker calls Runner.Evaluate from listers. Evaluate never mutates its
// input.
package eligibility
