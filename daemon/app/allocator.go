package app

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"github.com/bgplb/bgplb/daemon/eligibility"
	"github.com/bgplb/bgplb/daemon/metrics"
	"github.com/bgplb/bgplb/daemon/watch"
)

// runAllocator is bgplbd --mode=allocator: the informers, and while it holds the Lease
// (or always with --leader-elect=false) LB-IPAM and the Announced aggregator, which are
// the only writers of Service status. No speaker, datapath or registry socket: it runs
// as the bgplb-allocator Deployment with its own ServiceAccount, so the nodes' one needs
// no write access to Services (docs/security.md).
func runAllocator(ctx context.Context, cfg Config, cs clients) error {
	logger := klog.FromContext(ctx).WithValues("mode", ModeAllocator)
	ctx = klog.NewContext(ctx, logger)
	logger.Info("starting bgplbd", "version", cfg.Version, "class", cfg.Class, "defaultClass", cfg.DefaultClass)
	metrics.Register()
	eligibility.RegisterMetrics()

	hc := newHealth(nil, false) // readyz: informers and start only
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancelCause(ctx)
	defer func() { cancel(nil); wg.Wait() }()
	serveHTTP(ctx, &wg, cfg, hc)

	// No Secrets informer: peer passwords are the speakers' business, and the allocator's
	// ServiceAccount may not read Secrets.
	caches, err := watch.NewCaches(cs.kube, cs.crd, watch.Options{NodeName: cfg.NodeName, Resync: 10 * time.Minute})
	if err != nil {
		return fmt.Errorf("create caches: %w", err)
	}
	caches.Start(ctx)
	if !caches.WaitForCacheSync(ctx) {
		return errors.New("wait for informer caches: " + context.Cause(ctx).Error())
	}
	hc.setInformersSynced()

	broadcaster := record.NewBroadcaster(record.WithContext(ctx),
		record.WithCorrelatorOptions(record.CorrelatorOptions{LRUCacheSize: eventCacheSize}))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cs.kube.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	recorder := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "bgplb"})

	leaderWork := func(ctx context.Context) { runLeader(ctx, cfg, cs, caches, recorder) }
	if cfg.LeaderElect {
		wg.Go(func() { runLeaderElection(ctx, cfg, cs.kube, leaderWork) })
	} else {
		wg.Go(func() { leaderWork(ctx) })
	}
	hc.setStarted(nil)
	logger.Info("bgplbd allocator ready")
	<-ctx.Done()
	hc.setStopping()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
