// Package endpointweight implements the EndpointWeight Score plugin: the score is the
// number of local endpoints that take new flows (Selection.NewFlow), which feeds the
// link-bandwidth community of weighted ECMP (docs/design.md decision 4).
package endpointweight
