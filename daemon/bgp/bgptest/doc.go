// Package bgptest provides Fake, an in-memory bgp.Speaker for unit tests of the packages
// that drive the speaker (announce, app). It enforces the same allowed-prefix rule as the
// real speaker, so tests see ErrPrefixNotAllowed exactly where production would.
package bgptest
