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

	"github.com/bgplb/bgplb/daemon/metrics"
)

// SyncFunc applies the desired state for one key. A returned error requeues the key with
// rate-limited backoff; nil forgets its failures.
type SyncFunc func(ctx context.Context, key string) error

// maxRetries bounds how often one key is retried with backoff before it is dropped
// (it is enqueued again by the next event or resync).
const maxRetries = 15

// Queue is a rate-limited work queue of keys processed by SyncFunc workers. A key is never
// processed by two workers at once.
type Queue struct {
	name  string
	sync  SyncFunc
	q     workqueue.TypedRateLimitingInterface[string]
	onAdd func()        // see OnAdd
	yield func() bool   // see YieldTo
	slow  *rate.Limiter // paces keys while yield reports true

	mu        sync.Mutex
	firstSeen map[string]time.Time // key -> first enqueue since its last successful sync
	seenPeak  int                  // most keys firstSeen held since it was last (re)made
}

// shrinkAfter is the size from which firstSeen is made anew once it empties: a Go map keeps
// the buckets of its largest size, which after a burst of 10k Services is megabytes.
const shrinkAfter = 1024

// NewQueue returns a queue named name (used in logs and metric labels) that calls sync.
func NewQueue(name string, sync SyncFunc) *Queue {
	return &Queue{
		name: name,
		sync: sync,
		q: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: name},
		),
		firstSeen: map[string]time.Time{},
	}
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

// Add enqueues key.
func (q *Queue) Add(key string) {
	if q.onAdd != nil {
		q.onAdd()
	}
	q.mu.Lock()
	if _, ok := q.firstSeen[key]; !ok {
		q.firstSeen[key] = time.Now()
		q.seenPeak = max(q.seenPeak, len(q.firstSeen))
	}
	q.mu.Unlock()
	q.q.Add(key)
}

// Len returns the number of keys waiting.
func (q *Queue) Len() int { return q.q.Len() }

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
	q.q.ShutDown()
	wg.Wait()
	logger.Info("workers stopped")
}

func (q *Queue) runWorker(ctx context.Context) {
	for q.processNext(ctx) {
	}
}

func (q *Queue) processNext(ctx context.Context) bool {
	key, shutdown := q.q.Get()
	if shutdown {
		return false
	}
	defer q.q.Done(key)
	if !q.waitYield(ctx) {
		return false // ctx ended: the queue shuts down
	}
	q.mu.Lock()
	seen, hadSeen := q.firstSeen[key]
	q.forgetLocked(key) // a later Add restarts the clock for the next sync
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
		q.q.Forget(key)
		if hadSeen {
			metrics.ConvergenceSeconds.WithLabelValues(q.name).Observe(time.Since(seen).Seconds())
		}
		return true
	}
	if hadSeen {
		q.mu.Lock()
		if _, ok := q.firstSeen[key]; !ok {
			q.firstSeen[key] = seen // keep the original change time across retries
		}
		q.mu.Unlock()
	}
	if q.q.NumRequeues(key) < maxRetries {
		logger.Info("sync failed, will retry", "key", key, "err", err)
		q.q.AddRateLimited(key)
		return true
	}
	q.q.Forget(key)
	q.mu.Lock()
	q.forgetLocked(key)
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

// forgetLocked deletes key from firstSeen and, once a large map is empty, replaces it with a
// small one. Caller holds q.mu.
func (q *Queue) forgetLocked(key string) {
	delete(q.firstSeen, key)
	if len(q.firstSeen) == 0 && q.seenPeak >= shrinkAfter {
		q.firstSeen = map[string]time.Time{}
		q.seenPeak = 0
	}
}
