//go:build bench

package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bgplb/bgplb/conformance/lab"
)

// settle waits until bgplbd, kube-apiserver and etcd together use less than 5% of a
// CPU over 2 s, or timeout passes (then it says so and goes on).
func settle(t *testing.T, l *lab.Lab, timeout time.Duration) {
	t.Helper()
	procs, err := l.Processes()
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, p := range procs {
		name := filepath.Base(p.Name)
		if p.Alive && (strings.HasSuffix(name, "-bgplbd") || name == "kube-apiserver" || name == "etcd") {
			pids = append(pids, p.PID)
		}
	}
	ticks := func() (sum int64) {
		for _, pid := range pids {
			sum += procTicks(pid)
		}
		return sum
	}
	// Clock ticks are 10 ms: < 0.1 s of CPU in 2 s.
	waitSteady(t, "settled", "still busy", 2*time.Second, timeout, ticks, func(prev, cur int64) bool { return cur-prev < 10 })
}

// waitSteady samples every interval until steady(previous, current) holds or timeout
// passes, logs which with done or busy, and returns how long it waited.
func waitSteady[T any](t *testing.T, done, busy string, interval, timeout time.Duration, sample func() T, steady func(prev, cur T) bool) time.Duration {
	t.Helper()
	start := time.Now()
	prev := sample()
	for time.Since(start) < timeout {
		time.Sleep(interval)
		cur := sample()
		if steady(prev, cur) {
			t.Logf("%s after %s", done, time.Since(start).Round(time.Second))
			return time.Since(start)
		}
		prev = cur
	}
	t.Logf("%s after %s; going on", busy, timeout)
	return time.Since(start)
}

// procTicks returns utime+stime of pid in clock ticks (0 when it cannot be read).
func procTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start at state (field 3).
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+1:]
	}
	f := strings.Fields(s)
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

// liveHeap returns the Go heap bytes in use right after a garbage collection of the
// bgplbd in netns: the daemon's heap profile endpoint (--profiling) with gc=1 collects
// first and, with debug=1, prints the runtime's MemStats.
func liveHeap(ctx context.Context, netns string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", netns, "curl", "-sSf",
		"http://127.0.0.1:9464/debug/pprof/heap?gc=1&debug=1").Output()
	if err != nil {
		return 0, fmt.Errorf("get heap profile: %w", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "# HeapAlloc = "); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no HeapAlloc in the heap profile")
}

// rssSteady waits until RSS has settled on every bgplbd of pids (node → pid) and
// returns how long it waited. It samples every 15 s and calls RSS settled when no
// daemon's fell by 1 MiB or more in each of two consecutive windows and at least
// 2m15s have passed: the Go runtime returns freed pages gradually, and its forced
// collection every 2 minutes lowers the scavenger's goal again, so a read before one
// has happened can be several MiB high. It gives up after timeout and says so.
func rssSteady(t *testing.T, pids map[string]int, timeout time.Duration) time.Duration {
	t.Helper()
	nodes := sortedKeys(pids)
	sample := func() []int64 {
		out := make([]int64, len(nodes))
		for i, n := range nodes {
			out[i], _, _ = procMem(pids[n])
		}
		return out
	}
	const window, minWait = 15 * time.Second, 2*time.Minute + 15*time.Second
	start := time.Now()
	prev, calm := sample(), 0
	for time.Since(start) < timeout {
		time.Sleep(window)
		cur := sample()
		fell := false
		var line []string
		for i := range cur {
			fell = fell || prev[i]-cur[i] >= 1<<20
			line = append(line, fmt.Sprintf("%s %s", nodes[i], mib(cur[i])))
		}
		t.Logf("RSS at %s: %s", time.Since(start).Round(time.Second), strings.Join(line, ", "))
		if calm++; fell {
			calm = 0
		}
		prev = cur
		if calm >= 2 && time.Since(start) >= minWait {
			t.Logf("RSS steady after %s", time.Since(start).Round(time.Second))
			return time.Since(start)
		}
	}
	t.Logf("RSS still falling after %s; going on", timeout)
	return time.Since(start)
}

// daemonPIDs returns the pid of every live bgplbd by node name.
func daemonPIDs(t *testing.T, l *lab.Lab) map[string]int {
	t.Helper()
	procs, err := l.Processes()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, p := range procs {
		if p.Alive && strings.HasSuffix(p.Name, "-bgplbd") {
			out[strings.TrimSuffix(filepath.Base(p.Name), "-bgplbd")] = p.PID
		}
	}
	return out
}

// cpuSeconds returns the CPU time (user + system) of every pid by node.
func cpuSeconds(pids map[string]int) map[string]float64 {
	out := map[string]float64{}
	for n, pid := range pids {
		out[n] = float64(procTicks(pid)) / 100 // clock ticks are 10 ms
	}
	return out
}

// cpuSpent formats, per node, the CPU seconds spent between two cpuSeconds samples.
func cpuSpent(from, to map[string]float64) string {
	var out []string
	for _, n := range sortedKeys(to) {
		out = append(out, fmt.Sprintf("%s %.1f s", n, to[n]-from[n]))
	}
	return strings.Join(out, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// procMem returns VmRSS, VmHWM and RssAnon of pid in bytes.
func procMem(pid int) (rss, hwm, anon int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = v << 10
		case "VmHWM:":
			hwm = v << 10
		case "RssAnon:":
			anon = v << 10
		}
	}
	return rss, hwm, anon
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
