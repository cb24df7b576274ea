package watch

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"github.com/bgplb/bgplb/daemon/keymap"
	"github.com/bgplb/bgplb/daemon/metrics"
)

// SyncFunc applies the desired state for one key. A returned error requeues the key with
// rate-limited backoff; nil forgets its failures.
type SyncFunc func(ctx context.Context, key string) error

// maxRetries bounds how often one key is retried with backoff before it is dropped
// (it is enqueued again by the next event or resync).
const maxRetries = 15

// Queue is a rate-limited work queue of keys processed by SyncFunc workers, with the
// contract of client-go's workqueue: a key waits at most once however often it is added,
// is never processed by two workers at once, and a key added while it is processed is
// processed again afterwards. Unlike client-go's, it gives back the memory of a burst:
// its sets and its FIFO are made anew once they empty after holding shrinkAfter keys (a
// Go map keeps the buckets of its largest size; after 10k Services that was ~1 MB per
// queue). Failed keys retry with client-go's default controller backoff.
type Queue struct {
	name    string
	sync    SyncFunc
	limiter workqueue.TypedRateLimiter[string] // per-key backoff; only failing keys
	onAdd   func()                             // see OnAdd
	yield   func() bool                        // see YieldTo
	slow    *rate.Limiter                      // paces keys while yield reports true

	mu         sync.Mutex
	cond       *sync.Cond // signalled when fifo gains a key or the queue shuts down
	fifo       []string   // keys waiting, in order
	fifoPeak   int
	dirty      keymap.Map[struct{}]  // keys waiting or re-added while processed
	processing keymap.Map[struct{}]  // keys a worker holds
	firstSeen  keymap.Map[time.Time] // key -> first enqueue since its last successful sync
	shutdown   bool
}

// shrinkAfter is the size from which the FIFO is made anew once it empties (the sets:
// keymap.ShrinkAfter).
const shrinkAfter = keymap.ShrinkAfter

// NewQueue returns a queue named name (used in logs and metric labels) that calls fn.
func NewQueue(name string, fn SyncFunc) *Queue {
	q := &Queue{name: name, sync: fn, limiter: workqueue.DefaultTypedControllerRateLimiter[string]()}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// Name returns the queue's name.
func (q *Queue) Name() string { return q.name }

// OnAdd sets a function every Add calls first (bgplbd's heap tuner learns from it that
// work arrived). Set it before the queue is used; it must be cheap and safe for
// concurrent use.
func (q *Queue) OnAdd(f func()) { q.onAdd = f }

// yieldEvery is how often a yielding queue's workers take a key (see YieldTo).
const yieldEvery = time.Second

// YieldTo makes q give way to other: while other has at least backlog keys waiting, q's
// workers take one key per second between them instead of as many as they can. bgplbd's
// Announced-condition writes yield to LB-IPAM's Service status writes, so a burst of
// allocations (a new leader, 10k new Services) does not share the API server with a
// burst of conditions for the same Services. Set it before Run.
func (q *Queue) YieldTo(other *Queue, backlog int) {
	q.yield = func() bool { return other.Len() >= backlog }
	q.slow = rate.NewLimiter(rate.Every(yieldEvery), 1)
}

// Add enqueues key. Adds after the queue shut down are ignored.
func (q *Queue) Add(key string) {
	if q.onAdd != nil {
		q.onAdd()
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shutdown {
		return
	}
	if _, ok := q.firstSeen.Get(key); !ok {
		q.firstSeen.Set(key, time.Now())
	}
	if _, ok := q.dirty.Get(key); ok {
		return // waiting already
	}
	q.dirty.Set(key, struct{}{})
	if _, ok := q.processing.Get(key); ok {
		return // done requeues it
	}
	q.pushLocked(key)
}

// addAfter adds key once d has passed.
func (q *Queue) addAfter(key string, d time.Duration) {
	if d <= 0 {
		q.Add(key)
		return
	}
	time.AfterFunc(d, func() { q.Add(key) })
}

// pushLocked appends key to the FIFO and wakes a worker. Caller holds q.mu.
func (q *Queue) pushLocked(key string) {
	q.fifo = append(q.fifo, key)
	q.fifoPeak = max(q.fifoPeak, len(q.fifo))
	q.cond.Signal()
}

// get blocks until a key waits, hands it to the caller and marks it processing; it
// reports false once the queue shuts down.
func (q *Queue) get() (string, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.fifo) == 0 && !q.shutdown {
		q.cond.Wait()
	}
	if q.shutdown {
		return "", false
	}
	key := q.fifo[0]
	q.fifo[0] = ""
	q.fifo = q.fifo[1:]
	if len(q.fifo) == 0 && q.fifoPeak >= shrinkAfter {
		q.fifo, q.fifoPeak = nil, 0 // the emptied slice still pins its array
	}
	q.processing.Set(key, struct{}{})
	q.dirty.Delete(key)
	return key, true
}

// done ends the processing of key; a key added meanwhile waits again.
func (q *Queue) done(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.processing.Delete(key)
	if _, ok := q.dirty.Get(key); ok && !q.shutdown {
		q.pushLocked(key)
	}
}

// Len returns the number of keys waiting.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.fifo)
}

// Run starts workers goroutines and blocks until ctx is done; it then shuts the queue
// down and waits for the workers to finish their current key.
func (q *Queue) Run(ctx context.Context, workers int) {
	defer utilruntime.HandleCrash()
	logger := klog.FromContext(ctx).WithValues("controller", q.name)
	ctx = klog.NewContext(ctx, logger)
	logger.Info("starting workers", "count", workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() { wait.UntilWithContext(ctx, q.runWorker, time.Second) })
	}
	<-ctx.Done()
	q.mu.Lock()
	q.shutdown = true
	q.cond.Broadcast()
	q.mu.Unlock()
	wg.Wait()
	logger.Info("workers stopped")
}

func (q *Queue) runWorker(ctx context.Context) {
	for q.processNext(ctx) {
	}
}

func (q *Queue) processNext(ctx context.Context) bool {
	key, ok := q.get()
	if !ok {
		return false
	}
	defer q.done(key)
	if !q.waitYield(ctx) {
		return false // ctx ended: the queue shuts down
	}
	q.mu.Lock()
	seen, hadSeen := q.firstSeen.Get(key)
	q.firstSeen.Delete(key) // a later Add restarts the clock for the next sync
	q.mu.Unlock()
	start := time.Now()
	err := q.sync(ctx, key)
	result := "success"
	if err != nil {
		result = "error"
	}
	metrics.ReconcileDuration.WithLabelValues(q.name, result).Observe(time.Since(start).Seconds())
	logger := klog.FromContext(ctx)
	if err == nil {
		q.limiter.Forget(key)
		if hadSeen {
			metrics.ConvergenceSeconds.WithLabelValues(q.name).Observe(time.Since(seen).Seconds())
		}
		return true
	}
	if hadSeen {
		q.mu.Lock()
		if _, ok := q.firstSeen.Get(key); !ok {
			q.firstSeen.Set(key, seen) // keep the original change time across retries
		}
		q.mu.Unlock()
	}
	if q.limiter.NumRequeues(key) < maxRetries {
		logger.Info("sync failed, will retry", "key", key, "err", err)
		q.addAfter(key, q.limiter.When(key))
		return true
	}
	q.limiter.Forget(key)
	q.mu.Lock()
	q.firstSeen.Delete(key)
	q.mu.Unlock()
	utilruntime.HandleErrorWithContext(ctx, fmt.Errorf("sync %s key %q: %w", q.name, key, err), "dropping key after retries")
	return true
}

// yieldPoll is how often a yielding worker looks at the other queue's backlog again.
const yieldPoll = 100 * time.Millisecond

// waitYield returns once the worker may sync its key: at once without a backlog in the
// queue q yields to, else when the one-per-yieldEvery pace allows or the backlog is gone.
// It returns false when ctx ends first.
func (q *Queue) waitYield(ctx context.Context) bool {
	if q.yield == nil {
		return true
	}
	for q.yield() && !q.slow.Allow() {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(yieldPoll):
		}
	}
	return true
}
