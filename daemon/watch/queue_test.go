package watch

import (
	"context"
	"fmt"
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
	peak := q.seenPeak
	q.mu.Unlock()
	if peak != burst {
		t.Fatalf("peak after the burst = %d, want %d", peak, burst)
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
	eventually(t, "the first-seen map made anew", func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.seenPeak == 0 && len(q.firstSeen) == 0
	})

	// A later small burst neither grows the peak to the threshold nor resets the map.
	q.Add("ns/a")
	eventually(t, "ns/a synced", func() bool { return rec.count("ns/a") == 1 })
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.seenPeak != 1 {
		t.Fatalf("peak after one key = %d, want 1 (map kept)", q.seenPeak)
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
