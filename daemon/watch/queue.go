package watch

import (
	"context"
	"fmt"
	"sync"
	"time"

	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	// Registers client-go's workqueue metrics (depth, adds, latency, work duration,
	// retries, unfinished work) in the legacy registry that /metrics serves.
	_ "k8s.io/component-base/metrics/prometheus/workqueue"

	"github.com/bgplb/bgplb/daemon/metrics"
)

// SyncFunc applies the desired state for one key. A returned error requeues the key with
// rate-limited backoff; nil forgets its failures.
type SyncFunc func(ctx context.Context, key string) error

// maxRetries bounds how often one key is retried with backoff before it is dropped
// (it is enqueued again by the next event or resync).
const maxRetries = 15

// Queue is client-go's typed rate-limiting work queue of keys with workers that call one
// SyncFunc, like kubernetes/sample-controller: a key waits at most once however often it
// is added, is never processed by two workers at once, and a key added while it is
// processed is processed again afterwards. Failed keys retry with client-go's default
// controller backoff. The queue is named, so client-go's workqueue metrics carry its name.
type Queue struct {
	name string
	sync SyncFunc
	q    workqueue.TypedRateLimitingInterface[string]
}

// NewQueue returns a queue named name (used in logs and metric labels) that calls fn.
func NewQueue(name string, fn SyncFunc) *Queue {
	return &Queue{name: name, sync: fn, q: workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: name})}
}

// Name returns the queue's name.
func (q *Queue) Name() string { return q.name }

// Add enqueues key. Adds after the queue shut down are ignored.
func (q *Queue) Add(key string) { q.q.Add(key) }

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
	start := time.Now()
	err := q.sync(ctx, key)
	result := "success"
	if err != nil {
		result = "error"
	}
	metrics.ReconcileDuration.WithLabelValues(q.name, result).Observe(time.Since(start).Seconds())
	if err == nil {
		q.q.Forget(key)
		return true
	}
	if q.q.NumRequeues(key) < maxRetries {
		klog.FromContext(ctx).Info("sync failed, will retry", "key", key, "err", err)
		q.q.AddRateLimited(key)
		return true
	}
	q.q.Forget(key)
	utilruntime.HandleErrorWithContext(ctx, fmt.Errorf("sync %s key %q: %w", q.name, key, err), "dropping key after retries")
	return true
}
