// Package router reads a real BGP router for the conformance suite: which paths it
// holds for a prefix (RIB), which next hops it installed (FIB), and the state of its
// sessions. The suite asserts on what a router sees, never on what bgplb says about
// itself.
//
// FRR is implemented (vtysh JSON). A second router (BIRD, OPNsense's FRR over SSH) is
// one more type that satisfies Router; only the command transport and the JSON shapes
// differ.
package router
