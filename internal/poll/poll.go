package poll

import (
	"testing"
	"time"

	"github.com/onsi/gomega"
	"github.com/onsi/gomega/types"
)

// Cond is a condition: func() bool, func() error or func() string (see the package doc).
type Cond interface {
	func() bool | func() error | func() string
}

// Eventually polls cond every interval until it holds and fails t (naming what) when it
// still does not after timeout.
func Eventually[C Cond](t testing.TB, timeout, interval time.Duration, what string, cond C) {
	t.Helper()
	gomega.NewWithT(t).Eventually(cond).WithTimeout(timeout).WithPolling(interval).Should(holds(cond), what)
}

// Consistently checks cond every interval for d and fails t (naming what) as soon as it
// does not hold: the check that something did not happen.
func Consistently[C Cond](t testing.TB, d, interval time.Duration, what string, cond C) {
	t.Helper()
	gomega.NewWithT(t).Consistently(cond).WithTimeout(d).WithPolling(interval).Should(holds(cond), what)
}

func holds[C Cond](cond C) types.GomegaMatcher {
	switch any(cond).(type) {
	case func() bool:
		return gomega.BeTrue()
	case func() error:
		return gomega.Succeed()
	default:
		return gomega.BeEmpty()
	}
}
