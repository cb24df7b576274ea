package watch

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestQueueShrinksAfterBurst checks that the first-seen map of a queue that held a burst
// of keys is made anew once every key synced, and that a small queue keeps its map.
func TestQueueShrinksAfterBurst(t *testing.T) {
	rec := &recorder{seen: map[string]int{}}
	q := NewQueue("test", rec.sync)
	const burst = shrinkAfter + 10
	for i := range burst {
		q.Add(fmt.Sprintf("ns/svc-%d", i))
	}
	q.mu.Lock()
	peaks := []int{q.firstSeen.Peak(), q.dirty.Peak(), q.fifoPeak}
	q.mu.Unlock()
	if !slices.Equal(peaks, []int{burst, burst, burst}) {
		t.Fatalf("peaks after the burst (first-seen, dirty, FIFO) = %v, want %d", peaks, burst)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go q.Run(ctx, 2)
	eventually(t, "every key synced", func() bool {
		for i := range burst {
			if rec.count(fmt.Sprintf("ns/svc-%d", i)) == 0 {
				return false
			}
		}
		return true
	})
	eventually(t, "the maps and the FIFO made anew", func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return !q.firstSeen.Allocated() && !q.dirty.Allocated() && q.fifo == nil
	})

	// A later small burst neither grows the peak to the threshold nor resets the map.
	q.Add("ns/a")
	eventually(t, "ns/a synced", func() bool { return rec.count("ns/a") == 1 })
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.firstSeen.Peak() != 1 || !q.firstSeen.Allocated() || !q.dirty.Allocated() {
		t.Fatalf("after one key: first-seen peak %d, maps allocated %v %v; want peak 1, maps kept", q.firstSeen.Peak(), q.firstSeen.Allocated(), q.dirty.Allocated())
	}
}

// TestQueueOnAdd: the OnAdd function runs on every Add, also of a key already queued.
func TestQueueOnAdd(t *testing.T) {
	q := NewQueue("test", func(context.Context, string) error { return nil })
	var n atomic.Int32
	q.OnAdd(func() { n.Add(1) })
	q.Add("ns/a")
	q.Add("ns/a")
	q.Add("ns/b")
	if got := n.Load(); got != 3 {
		t.Fatalf("OnAdd ran %d times for 3 adds", got)
	}
}

// TestQueueYieldTo: while the other queue has a backlog, the yielding queue takes one key
// per second; once the backlog is gone it takes the rest at once.
func TestQueueYieldTo(t *testing.T) {
	rec := &recorder{seen: map[string]int{}}
	q := NewQueue("announced", rec.sync)
	other := NewQueue("lbipam", func(context.Context, string) error { return nil })
	q.YieldTo(other, 3)
	for i := range 3 {
		other.Add(fmt.Sprintf("ns/ipam-%d", i))
	}
	const n = 10
	for i := range n {
		q.Add(fmt.Sprintf("ns/svc-%d", i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go q.Run(ctx, 2)
	synced := func() int {
		c := 0
		for i := range n {
			c += min(rec.count(fmt.Sprintf("ns/svc-%d", i)), 1)
		}
		return c
	}
	eventually(t, "the first key synced", func() bool { return synced() >= 1 })
	time.Sleep(300 * time.Millisecond)
	if got := synced(); got > 2 {
		t.Fatalf("%d keys synced while the other queue had a backlog, want at most 2 (one per second)", got)
	}
	go other.Run(ctx, 1)
	eventually(t, "every key synced once the backlog is gone", func() bool { return synced() == n })
}

// TestQueueContract: a key added many times while waiting syncs once; a key is never
// synced by two workers at once, and one added during its sync syncs again afterwards; a
// failed sync is retried (with backoff) until it succeeds; Adds after shutdown are
// ignored and Run returns.
func TestQueueContract(t *testing.T) {
	var (
		mu          sync.Mutex
		syncs       = map[string]int{}
		running     = map[string]bool{}
		overlap     bool
		failOnce    = true
		release     = make(chan struct{})
		slowStarted = make(chan struct{}, 1)
	)
	q := NewQueue("test", func(_ context.Context, key string) error {
		mu.Lock()
		overlap = overlap || running[key]
		running[key] = true
		syncs[key]++
		n := syncs[key]
		fail := key == "ns/flaky" && failOnce
		failOnce = failOnce && key != "ns/flaky"
		mu.Unlock()
		if key == "ns/slow" && n == 1 {
			slowStarted <- struct{}{}
			<-release // held until the test re-added it
		}
		mu.Lock()
		running[key] = false
		mu.Unlock()
		if fail {
			return fmt.Errorf("transient")
		}
		return nil
	})
	count := func(key string) int {
		mu.Lock()
		defer mu.Unlock()
		return syncs[key]
	}
	for range 5 {
		q.Add("ns/a")
	}
	if q.Len() != 1 {
		t.Fatalf("Len after 5 adds of one key = %d, want 1", q.Len())
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { q.Run(ctx, 4); close(stopped) }()
	q.Add("ns/slow")
	<-slowStarted
	q.Add("ns/slow") // during its sync: waits for it, then syncs again
	q.Add("ns/slow")
	time.Sleep(50 * time.Millisecond) // three idle workers must not take it meanwhile
	if n := count("ns/slow"); n != 1 {
		t.Fatalf("ns/slow synced %d times while its first sync ran", n)
	}
	close(release)
	eventually(t, "ns/slow synced again after its first sync", func() bool { return count("ns/slow") == 2 })
	q.Add("ns/flaky")
	eventually(t, "ns/flaky retried after its failure", func() bool { return count("ns/flaky") == 2 })
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	if overlap || syncs["ns/a"] != 1 || syncs["ns/slow"] != 2 || syncs["ns/flaky"] != 2 {
		t.Errorf("syncs %v, overlap %v; want ns/a once, ns/slow and ns/flaky twice, no overlap", syncs, overlap)
	}
	mu.Unlock()
	cancel()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after ctx ended")
	}
	q.Add("ns/late")
	if q.Len() != 0 {
		t.Errorf("Len after an Add past shutdown = %d, want 0", q.Len())
	}
}
