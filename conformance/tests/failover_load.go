package tests

import (
	"net/netip"
	"testing"
	"time"

	"github.com/bgplb/bgplb/conformance/suite"
)

// loadTally is what a bounded client load (suite.StartLoad) saw for one VIP.
type loadTally struct {
	Requests, Failed int
}

// tallyLoad logs, per VIP (named by names), how many requests the load completed and
// how many failed, and every failed request with when it started and ended relative to
// t0 and its error, so a failure can be matched with the step that caused it. It
// returns the tallies by VIP.
func tallyLoad(t *testing.T, reqs []suite.Request, names map[netip.Addr]string, t0 time.Time) map[netip.Addr]loadTally {
	t.Helper()
	out := map[netip.Addr]loadTally{}
	for _, r := range reqs {
		c := out[r.VIP]
		c.Requests++
		if r.Err != nil {
			c.Failed++
			t.Logf("%s (%s): request started at +%s failed at +%s: %v", names[r.VIP], r.VIP,
				r.Start.Sub(t0).Round(time.Millisecond), r.End.Sub(t0).Round(time.Millisecond), r.Err)
		}
		out[r.VIP] = c
	}
	for vip, c := range out {
		t.Logf("%s (%s): %d requests, %d failed", names[vip], vip, c.Requests, c.Failed)
	}
	return out
}
