// Package trafficpolicy implements the TrafficPolicy Filter plugin: docs/design.md decisions 2
// and 3. It only reads the Selection the Runner computed with eligibility.SelectEndpoints
// (the predicate the datapath shares) and refuses the announcement when the selection
// says so.
package trafficpolicy
