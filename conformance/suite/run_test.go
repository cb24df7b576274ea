package suite

import (
	"testing"
)

// TestRunSkipReason: a test skipped through Suite.Skip is reported with that reason, a
// plain t.Skip with the generic one. The two skips happen inside t.Run, so this test
// itself passes.
func TestRunSkipReason(t *testing.T) {
	s := &Suite{}
	tests := []ConformanceTest{
		{ShortName: "WithReason", Test: func(t *testing.T, s *Suite) { s.Skip(t, "the router cannot do it") }},
		{ShortName: "InSubtest", Test: func(t *testing.T, s *Suite) {
			t.Run("sub", func(t *testing.T) { s.Skip(t, "not in a subtest either") })
			t.SkipNow()
		}},
		{ShortName: "Plain", Test: func(t *testing.T, _ *Suite) { t.Skip("see the log") }},
	}
	res := Run(t, s, tests, false)
	want := map[string]string{
		"WithReason": "the router cannot do it",
		"InSubtest":  "not in a subtest either",
		"Plain":      "skipped by the test (see its log)",
	}
	if len(res) != len(want) {
		t.Fatalf("%d results, want %d: %+v", len(res), len(want), res)
	}
	for _, r := range res {
		if r.Outcome != "skipped" || r.Reason != want[r.Test.ShortName] {
			t.Errorf("%s: %s %q, want skipped %q", r.Test.ShortName, r.Outcome, r.Reason, want[r.Test.ShortName])
		}
	}
}
