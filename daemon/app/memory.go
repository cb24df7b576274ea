package app

import (
	"context"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/klog/v2"
)

// The idle heap. Between collections the Go heap grows to (1 + GOGC/100) × the live heap,
// and the runtime returns freed pages to the OS only slowly; both count as the daemon's
// RSS. Bursts (the initial sync of 10k Services, a new leader writing 20k conditions) need
// that headroom or they spend their time collecting; a quiet daemon (~0.5 MB/s allocated)
// does not. So, like JEP 346 does for the JVM's G1, the tuner keeps a smaller heap (half
// the GOGC) while the daemon is quiet and returns its free pages to the OS: when it turns
// quiet, and then at most once per idleReleaseEvery while at least idleReleaseMin bytes
// are free again.
const (
	tuneEvery = 5 * time.Second
	// busyAlloc is the allocation per period from which the daemon counts as busy (at
	// ~3 MiB/s a burst is under way): idle at 10k Services it allocates ~0.5 MB/s
	// (BGPNodeState comparisons, keepalives).
	busyAlloc = 16 << 20
	// quietPeriods is how many periods in a row below busyAlloc make the daemon idle.
	quietPeriods = 6
	// idleReleaseEvery and idleReleaseMin bound the releases while idle: each forces a
	// collection (~50 ms of CPU at a 60 MB heap).
	idleReleaseEvery = 12 // periods
	idleReleaseMin   = 4 << 20
	// minIdleGCPercent bounds the idle GOGC from below.
	minIdleGCPercent = 10
)

// heapStats reads the cumulative bytes allocated and the free heap bytes not yet returned
// to the OS.
type heapStats func() (allocated, free uint64)

// heapTuner switches the GC percent between busy (the configured GOGC) and idle (half of
// it). Work arriving (Busy, called by every work queue's Add) or a period with busyAlloc
// bytes allocated restores the configured percent at once; quietPeriods periods in a row
// without either switch to idle and return free memory to the OS, as do later idle
// periods (see idleReleaseEvery). A GOGC of off (negative) is left alone.
type heapTuner struct {
	// worked is set by Busy and taken by check; idleNow mirrors isIdle, so that Busy, called
	// on every work-queue Add (10k times in a burst), takes no lock while not idle.
	worked, idleNow atomic.Bool

	mu           sync.Mutex
	stats        heapStats
	setPercent   func(int) int // debug.SetGCPercent
	release      func()        // debug.FreeOSMemory
	busy, idle   int           // GC percents
	last         uint64        // allocated at the previous check
	primed       bool          // last is set
	quiet        int           // quiet periods in a row
	isIdle       bool          // idle percent in effect
	sinceRelease int           // periods since the last release while idle
}

func newHeapTuner(stats heapStats, setPercent func(int) int, release func()) *heapTuner {
	busy := setPercent(100)
	setPercent(busy)
	return &heapTuner{stats: stats, setPercent: setPercent, release: release,
		busy: busy, idle: max(busy/2, minIdleGCPercent)}
}

// Busy records that work arrived: the configured percent applies again at once, and the
// period counts as busy. Cheap and safe for concurrent use.
func (t *heapTuner) Busy() {
	if !t.worked.Load() {
		t.worked.Store(true)
	}
	if !t.idleNow.Load() {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.isIdle {
		t.setPercent(t.busy)
		t.setIdle(false)
	}
}

// setIdle sets isIdle and its mirror. Caller holds t.mu.
func (t *heapTuner) setIdle(idle bool) {
	t.isIdle = idle
	t.idleNow.Store(idle)
}

// check runs one period's decision; it reports whether the daemon is idle now.
func (t *heapTuner) check() bool {
	t.mu.Lock()
	if t.busy < 0 {
		t.mu.Unlock()
		return false
	}
	now, free := t.stats()
	worked := t.worked.Swap(false)
	if t.primed && !worked && now >= t.last && now-t.last < busyAlloc {
		t.quiet++
	} else {
		t.quiet = 0
	}
	t.last, t.primed = now, true
	release := false
	switch {
	case t.quiet >= quietPeriods && !t.isIdle:
		t.setPercent(t.idle)
		t.setIdle(true)
		release = true
	case t.quiet == 0 && t.isIdle:
		t.setPercent(t.busy)
		t.setIdle(false)
	case t.isIdle:
		t.sinceRelease++
		release = t.sinceRelease >= idleReleaseEvery && free >= idleReleaseMin
	}
	idle := t.isIdle
	t.mu.Unlock()
	if release {
		t.release() // collect (at the idle goal) and return what is free; Busy may run meanwhile
		t.mu.Lock()
		t.last, _ = t.stats() // the collection's own work is no activity
		t.sinceRelease = 0
		t.mu.Unlock()
	}
	return idle
}

// runtimeHeapStats reads heapStats from runtime/metrics.
func runtimeHeapStats() (allocated, free uint64) {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/memory/classes/heap/free:bytes"}}
	metrics.Read(s)
	for _, v := range s {
		if v.Value.Kind() != metrics.KindUint64 {
			return 0, 0
		}
	}
	return s[0].Value.Uint64(), s[1].Value.Uint64()
}

// run checks every tuneEvery until ctx is done.
func (t *heapTuner) run(ctx context.Context) {
	logger := klog.FromContext(ctx)
	tick := time.NewTicker(tuneEvery)
	defer tick.Stop()
	idle := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if now := t.check(); now != idle {
				idle = now
				logger.V(4).Info("heap tuned", "idle", idle)
			}
		}
	}
}
