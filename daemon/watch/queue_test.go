package watch

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bgplb/bgplb/internal/poll"
)

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
	// Three idle workers must not take it meanwhile.
	poll.Consistently(t, 50*time.Millisecond, tick, "ns/slow synced once while its first sync runs",
		func() bool { return count("ns/slow") == 1 })
	close(release)
	poll.Eventually(t, waitFor, tick, "ns/slow synced again after its first sync", func() bool { return count("ns/slow") == 2 })
	q.Add("ns/flaky")
	poll.Eventually(t, waitFor, tick, "ns/flaky retried after its failure", func() bool { return count("ns/flaky") == 2 })
	poll.Consistently(t, 50*time.Millisecond, tick, "no more syncs, no overlap", func() string {
		mu.Lock()
		defer mu.Unlock()
		if overlap || syncs["ns/a"] != 1 || syncs["ns/slow"] != 2 || syncs["ns/flaky"] != 2 {
			return fmt.Sprintf("syncs %v, overlap %v; want ns/a once, ns/slow and ns/flaky twice, no overlap", syncs, overlap)
		}
		return ""
	})
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
