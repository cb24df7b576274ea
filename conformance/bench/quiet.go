package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// CPUTimes is the first line of /proc/stat: cumulative jiffies per state.
type CPUTimes struct {
	Busy  uint64 // user, nice, system, irq, softirq
	Total uint64 // busy + idle + iowait (steal and guest are not ours to use)
}

// ParseCPUTimes parses the aggregate "cpu" line of /proc/stat.
func ParseCPUTimes(stat string) (CPUTimes, error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return CPUTimes{}, fmt.Errorf("parse /proc/stat: first line %q is not the cpu line", line)
	}
	var v [7]uint64
	for i := range v {
		n, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			return CPUTimes{}, fmt.Errorf("parse /proc/stat field %d: %w", i+1, err)
		}
		v[i] = n
	}
	// user nice system idle iowait irq softirq
	busy := v[0] + v[1] + v[2] + v[5] + v[6]
	return CPUTimes{Busy: busy, Total: busy + v[3] + v[4]}, nil
}

// BusyFraction is the share of the usable CPU time between a and b spent busy.
func BusyFraction(a, b CPUTimes) float64 {
	if b.Total <= a.Total {
		return 0
	}
	return float64(b.Busy-a.Busy) / float64(b.Total-a.Total)
}

func readCPUTimes() (CPUTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return CPUTimes{}, fmt.Errorf("read /proc/stat: %w", err)
	}
	return ParseCPUTimes(string(b))
}

// WaitQuiet waits until the machine's CPUs are busy less than maxBusy (0–1) over a
// window, so that a measurement does not compete with a lab still digesting a burst
// of objects (kube-proxy resyncs, informers). It returns the last window's busy
// fraction and whether it was under maxBusy before the context ended.
func WaitQuiet(ctx context.Context, window time.Duration, maxBusy float64) (float64, bool) {
	last := 1.0
	for {
		a, err := readCPUTimes()
		if err != nil {
			return last, false
		}
		select {
		case <-ctx.Done():
			return last, false
		case <-time.After(window):
		}
		b, err := readCPUTimes()
		if err != nil {
			return last, false
		}
		last = BusyFraction(a, b)
		if last < maxBusy {
			return last, true
		}
	}
}
