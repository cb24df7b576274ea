// Package router reads a real BGP router for the conformance suite: which paths it
// holds for a prefix (RIB), which next hops it installed (FIB), and the state of its
// sessions. The suite asserts on what a router sees, never on what bgplb says about
// itself.
//
// FRR (vtysh JSON) and BIRD 2 (birdc text, the kernel FIB through iproute2's JSON)
// are implemented; each reads through a command transport (a lab namespace, SSH) given
// by its user. Their parsers are tested on outputs recorded from the real daemons
// (testdata/). BIRD keeps no session counters like FRR's dropped connections: a reset
// shows there as a later EstablishedSince.
package router
