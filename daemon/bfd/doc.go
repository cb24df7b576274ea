// Package bfd is Bidirectional Forwarding Detection for bgplbd: asynchronous mode,
// single hop (RFC 5880, RFC 5881), one session per BGP neighbour that asks for it.
//
// Who calls it: daemon/bgp owns a Manager, adds a session for every peer whose
// PeerConfig has BFD set and turns the BGP session off when its BFD session's detection
// time expires while Up (and on again when it is back Up). The router, running BFD too,
// drops the node's routes within the detection time (minRx × multiplier) instead of the
// hold time.
//
// Contract and limits:
//   - Control packets go to UDP port 3784 from a source port in 49152–65535 with TTL (hop
//     limit) 255, and received packets with any other TTL are dropped (GTSM, RFC 5881
//     section 5): a packet that crossed a router cannot drive a session.
//   - The state machine (Down, Init, Up, AdminDown) is RFC 5880 section 6.2 / 6.8.6.
//     OnChange reports every transition; callers treat only leaving Up as a failure (RFC
//     5882 section 3.2), so a peer that never runs BFD leaves its BGP session alone.
//   - While a session is not Up it sends at most once a second (section 6.8.3); when it
//     comes Up it switches to the configured intervals with a Poll Sequence, and so it
//     does for every later change (SetConfig). Until the Final arrives it keeps the
//     intervals in use, so neither side declares the other dead because of the change.
//   - Intervals are jittered by 0–25 % (10–25 % with a multiplier of 1), section 6.8.7.
//   - Not implemented: authentication (packets with the A bit are dropped), Demand mode
//     (never requested; a peer asking for it is answered in asynchronous mode), the Echo
//     function (Required Min Echo RX Interval is sent as 0), multihop (RFC 5883).
//
// A Session's goroutine owns its state; Status returns a snapshot. The Manager owns the
// sockets: one receive socket per address family bound to port 3784 and one connected
// send socket per session.
package bfd
