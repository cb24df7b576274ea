package poll

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is a testing.TB that records a failure instead of stopping the test.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper()                   {}
func (r *recorder) Fatalf(f string, a ...any) { r.failed = fmt.Sprintf(f, a...) }
func (r *recorder) Errorf(f string, a ...any) { r.failed = fmt.Sprintf(f, a...) }
func (r *recorder) Fail()                     { r.failed = "failed" }
func (r *recorder) FailNow()                  { r.failed = "failed" }

func TestEventually(t *testing.T) {
	var n atomic.Int32
	Eventually(t, time.Second, time.Millisecond, "third call", func() bool { return n.Add(1) >= 3 })
	Eventually(t, time.Second, time.Millisecond, "no error", func() error {
		if n.Add(1) < 6 {
			return errors.New("not yet")
		}
		return nil
	})
	Eventually(t, time.Second, time.Millisecond, "empty", func() string {
		if n.Add(1) < 9 {
			return "not yet"
		}
		return ""
	})

	r := &recorder{TB: t}
	Eventually(r, 50*time.Millisecond, 5*time.Millisecond, "the impossible", func() error { return errors.New("still broken") })
	if !strings.Contains(r.failed, "the impossible") || !strings.Contains(r.failed, "still broken") {
		t.Errorf("failure message %q names neither what nor the last error", r.failed)
	}
}

func TestConsistently(t *testing.T) {
	start := time.Now()
	Consistently(t, 50*time.Millisecond, 5*time.Millisecond, "holds", func() bool { return true })
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("Consistently returned after %v, want the whole 50ms", d)
	}
	r := &recorder{TB: t}
	var n atomic.Int32
	Consistently(r, time.Second, time.Millisecond, "quiet", func() string {
		if n.Add(1) > 3 {
			return "something happened"
		}
		return ""
	})
	if !strings.Contains(r.failed, "quiet") || !strings.Contains(r.failed, "something happened") {
		t.Errorf("failure message %q", r.failed)
	}
}
