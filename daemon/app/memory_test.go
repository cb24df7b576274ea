package app

import "testing"

// TestHeapTuner: quietPeriods quiet periods in a row switch to half the GC percent and
// release memory; while idle it releases again at most every idleReleaseEvery periods and
// only with idleReleaseMin bytes free; one busy period or Busy restores the configured
// percent and restarts the count; the first period only primes; GOGC=off is left alone.
func TestHeapTuner(t *testing.T) {
	var alloc, free uint64
	percent, releases := 50, 0
	set := func(p int) int { old := percent; percent = p; return old }
	tu := newHeapTuner(func() (uint64, uint64) { return alloc, free }, set,
		func() { releases++; alloc += 1 << 20; free = 0 })
	if percent != 50 || tu.busy != 50 || tu.idle != 25 {
		t.Fatalf("start: percent %d, busy %d, idle %d", percent, tu.busy, tu.idle)
	}
	step := func(name string, allocated uint64, idle bool, wantPercent, wantReleases int) {
		t.Helper()
		alloc += allocated
		if got := tu.check(); got != idle || percent != wantPercent || releases != wantReleases {
			t.Fatalf("%s: idle %v, percent %d, releases %d; want %v, %d, %d", name, got, percent, releases, idle, wantPercent, wantReleases)
		}
	}
	step("first period primes only", 0, false, 50, 0)
	for range quietPeriods - 1 {
		step("quiet, not long enough", busyAlloc-1, false, 50, 0)
	}
	step("busy resets the count", busyAlloc, false, 50, 0)
	for range quietPeriods - 1 {
		step("quiet again", 1<<20, false, 50, 0)
	}
	step("quiet long enough: idle, one release", 1<<20, true, 25, 1)

	// Idle: free pages come back; a release only every idleReleaseEvery periods and only
	// when enough is free.
	free = idleReleaseMin
	for range idleReleaseEvery - 1 {
		step("idle, too soon to release", 1<<20, true, 25, 1)
	}
	free = idleReleaseMin - 1
	step("idle, too little free", 1<<20, true, 25, 1)
	free = idleReleaseMin
	step("idle, enough free", 1<<20, true, 25, 2)

	step("burst: the configured percent at once", busyAlloc*3, false, 50, 2)
	for range quietPeriods - 1 {
		step("quiet after the burst", 0, false, 50, 2)
	}
	step("idle again", 0, true, 25, 3)
	tu.Busy() // work arrived: the configured percent before the next period
	if percent != 50 {
		t.Fatalf("after Busy: percent %d", percent)
	}
	step("the period work arrived in is busy", 0, false, 50, 3)
	for range quietPeriods - 1 {
		step("quiet after work arrived", 0, false, 50, 3)
	}
	tu.Busy() // more work: the quiet periods start anew
	step("busy again", 0, false, 50, 3)
	for range quietPeriods - 1 {
		step("quiet, counted anew", 0, false, 50, 3)
	}
	step("idle once more", 0, true, 25, 4)
	tu.Busy()
	tu.Busy() // while busy: no lock, no percent change
	if percent != 50 || tu.idleNow.Load() {
		t.Fatalf("after Busy twice: percent %d, idle %v", percent, tu.idleNow.Load())
	}

	off := -1
	tu = newHeapTuner(func() (uint64, uint64) { return 0, 1 << 30 }, func(p int) int { old := off; off = p; return old },
		func() { t.Fatal("released with GOGC=off") })
	for range 3 * quietPeriods {
		if tu.check() || off != -1 {
			t.Fatalf("GOGC=off changed: %d", off)
		}
	}
}
