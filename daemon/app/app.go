package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/klog/v2"

	"github.com/bgplb/bgplb/daemon/announce"
	"github.com/bgplb/bgplb/daemon/bgp"
	"github.com/bgplb/bgplb/daemon/client/clientset/versioned"
	"github.com/bgplb/bgplb/daemon/eligibility"
	"github.com/bgplb/bgplb/daemon/ipam"
	"github.com/bgplb/bgplb/daemon/lbipam"
	"github.com/bgplb/bgplb/daemon/metrics"
	"github.com/bgplb/bgplb/daemon/peers"
	"github.com/bgplb/bgplb/daemon/registry"
	"github.com/bgplb/bgplb/daemon/registry/api"
	"github.com/bgplb/bgplb/daemon/status"
	"github.com/bgplb/bgplb/daemon/watch"
)

// eventCacheSize is the size of each of the event correlator's LRU caches.
const eventCacheSize = 512

// Run runs the daemon until ctx is done. It returns an error when a part fails to start;
// after a clean shutdown it returns nil.
func Run(ctx context.Context, cfg Config) error {
	restCfg, err := restConfig(cfg.Kubeconfig)
	if err != nil {
		return err
	}
	restCfg.UserAgent = "bgplbd/" + cfg.Version
	restCfg.QPS, restCfg.Burst = cfg.KubeAPIQPS, cfg.KubeAPIBurst
	// Each client has its own client-side rate limiter: the LB-IPAM writes (one status per
	// Service) and the Announced-condition writes must not starve each other or the
	// daemon's own reads.
	// Built-in types travel as protobuf: decoding 10k Services and EndpointSlices from
	// JSON costs several times the CPU and transient memory. CRDs only speak JSON.
	kubeCfg := rest.CopyConfig(restCfg)
	kubeCfg.ContentType = "application/vnd.kubernetes.protobuf"
	kubeCfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	var cs clients
	for _, c := range []*kubernetes.Interface{&cs.kube, &cs.ipam, &cs.status} {
		k, err := kubernetes.NewForConfig(kubeCfg)
		if err != nil {
			return fmt.Errorf("create kubernetes client: %w", err)
		}
		*c = k
	}
	crd, err := versioned.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("create bgplb client: %w", err)
	}
	cs.crd = crd
	return run(ctx, cfg, cs, bgp.NewSpeaker(klog.FromContext(ctx)))
}

// clients are the API clients of the daemon.
type clients struct {
	kube   kubernetes.Interface // informers, node, events, leader election
	ipam   kubernetes.Interface // LB-IPAM Service status writes
	status kubernetes.Interface // Announced condition writes
	crd    versioned.Interface
}

// run is Run with the clients and the speaker given (tests pass fakes).
func run(ctx context.Context, cfg Config, cs clients, bgpSpeaker bgp.Speaker) error {
	if cfg.Mode == ModeAllocator {
		return runAllocator(ctx, cfg, cs) // allocator.go
	}
	kube, crd := cs.kube, cs.crd
	speaker := newRecordingSpeaker(bgpSpeaker) // persist.go
	logger := klog.FromContext(ctx).WithValues("node", cfg.NodeName)
	ctx = klog.NewContext(ctx, logger)
	logger.Info("starting bgplbd", "version", cfg.Version, "class", cfg.Class, "defaultClass", cfg.DefaultClass,
		"datapath", cfg.Datapath, "socket", cfg.Socket)
	metrics.Register()
	eligibility.RegisterMetrics()

	hc := newHealth(speaker, cfg.Datapath) // health.go
	metrics.SetPeerSource(peerSamples(speaker))
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancelCause(ctx)
	defer func() { cancel(nil); wg.Wait() }()
	serveHTTP(ctx, &wg, cfg, hc)
	startCNIChain(ctx, &wg, cfg, kube) // cni.go: keeps the CNI plugin chained; uninstalls on DaemonSet removal

	var regOpts []registry.Option
	if cfg.RegistryClientExe != "" {
		regOpts = append(regOpts, registry.WithClientExecutable(cfg.RegistryClientExe))
	}
	reg := registry.New(regOpts...)

	caches, err := watch.NewCaches(kube, crd, watch.Options{NodeName: cfg.NodeName, SecretNamespace: cfg.Namespace, Resync: 10 * time.Minute})
	if err != nil {
		return err
	}

	// The API server may be unreachable while we restart: then announce what the last
	// daemon announced (persist.go) while we keep waiting, so graceful restart never
	// expires on the routers.
	node, fromState, err := startNode(ctx, cfg, kube, speaker)
	if err != nil {
		return err
	}
	routerID, routerIDFrom, err := nodeRouterID(node, cfg.RouterID) // routerid.go
	if err != nil {
		return err
	}
	logger.Info("BGP router ID", "routerID", routerID, "from", routerIDFrom)

	if !fromState {
		if err := speaker.Start(ctx, bgp.Global{ASN: cfg.ASN, RouterID: routerID, ListenPort: cfg.ListenPort}); err != nil {
			return fmt.Errorf("start bgp speaker: %w", err)
		}
	}
	defer stopSpeaker(ctx, cfg, kube, speaker) // drain.go: a restart keeps the routes, a shutdown drains them

	var endpoints eligibility.EndpointRegistry
	view := newRegistryView(reg)
	if cfg.Datapath {
		endpoints = view
	}
	runner, err := eligibility.NewRunner(ctx, newPluginRegistry(), cfg.Profile, eligibility.NewHandle(cfg.NodeName, endpoints, speaker))
	if err != nil {
		return fmt.Errorf("create eligibility runner: %w", err)
	}

	dp, err := startDatapath(ctx, cfg, kube, node, reg)
	if err != nil {
		return err
	}
	hc.setDatapath(dp.m != nil, cfg.BPFPinDir)

	rec := peers.New(peers.Sources{
		Node:    caches.Node,
		Pools:   caches.Pools(),
		Peers:   caches.Peers(),
		Secrets: caches.Secrets,
	}, speaker)
	rec.ExportPodCIDRs(cfg.ExportPodCIDR)
	drain := newNodeDrain(logger, speaker, caches.Node, cfg.DrainDelay) // drain_node.go: make-before-break on a drained node
	defer drain.close()
	ann := announce.New(announce.Sources{
		Services:       caches.Services,
		Slices:         caches.SlicesForService,
		Node:           caches.Node,
		Pools:          caches.Pools(),
		Advertisements: caches.Advertisements(),
	}, runner, drain, rec, dp.announceDatapath())
	rec.SkipPrefixes(ann.Announced)
	var syncErrors status.Errors
	nodeSrc := status.NodeSource{Version: cfg.Version, Errors: syncErrors.List, PeerProblems: rec.Problems}
	if cfg.Datapath {
		nodeSrc.Datapath = view.summary
	}
	obs := newObserver(node, ann, func(ns, name string) (*corev1.Service, bool) { // observe.go
		svc, err := caches.Services.Services(ns).Get(name)
		return svc, err == nil
	})
	nodeState := status.NewNodeStateWriter(crd, cfg.NodeName, speaker, ann, nodeSrc, caches.Node, time.Second)
	ann.OnChange(nodeState.Trigger)
	rec.OnChange(nodeState.Trigger)

	// One queue per reconciler; a sync's error shows in the BGPNodeState until the key's
	// next sync succeeds.
	recorded := func(sync watch.SyncFunc) watch.SyncFunc {
		return func(ctx context.Context, key string) error {
			err := sync(ctx, key)
			hc.synced()
			if syncErrors.Record(key, err) {
				nodeState.Trigger()
			}
			return err
		}
	}
	queue := watch.NewQueue("announce", recorded(func(ctx context.Context, key string) error {
		return obs.sync(key, func() error { return ann.SyncService(ctx, key) }) // observe.go
	}))
	peersQueue := watch.NewQueue("peers", recorded(rec.Sync))
	// peerSelectors route per BGPPeer: when the configured peers or their labels change,
	// shared VIPs are merged again and every Service's per-peer routes are recomputed.
	rec.OnPeersChanged(func(ctx context.Context) error {
		err := ann.PeersChanged(ctx)
		caches.EnqueueAll(queue)
		return err
	})
	caches.Subscribe(queue, watch.Triggers{
		Services:       true,
		Slices:         true,
		Node:           []string{watch.AllServices},
		Pools:          []string{watch.AllServices},
		Advertisements: []string{watch.AllServices},
	})
	drainQueue := watch.NewQueue("drain", drain.Sync)
	caches.Subscribe(drainQueue, watch.Triggers{Node: []string{"drain"}})
	caches.Subscribe(peersQueue, watch.Triggers{
		Node:    []string{peers.Key},
		Secrets: []string{peers.Key},
		Pools:   []string{peers.Key},
		Peers:   []string{peers.Key},
	})
	reg.ServeRoutes(routesFunc(ann, speaker))
	cancelReg := reg.Subscribe(func(ep api.Endpoint, _ bool) { caches.EnqueueEndpoint(queue, ep) })
	defer cancelReg()

	// The endpoint registry: adopt what the CNI plugin recorded while we were down, then
	// serve its socket at once, so no ADD falls between the rebuild and the first request.
	if _, err := reg.Rebuild(ctx, api.RecordStore{Dir: cfg.RecordsDir}); err != nil {
		logger.Info("endpoint registry rebuilt with errors", "err", err)
	}
	wg.Go(func() {
		if err := reg.Serve(ctx, cfg.Socket); err != nil {
			cancel(fmt.Errorf("endpoint registry server: %w", err)) // fatal: the CNI plugin needs it
		}
	})

	caches.Start(ctx)
	if !caches.WaitForCacheSync(ctx) {
		return errors.New("wait for informer caches: " + context.Cause(ctx).Error())
	}
	logger.Info("informer caches synced")
	hc.setInformersSynced()

	// First pass, synchronously: allowed prefixes, every Service, then the peers (so a
	// graceful-restart peer gets the whole table before End-of-RIB), then prune what no
	// Service claimed from before the restart.
	_ = drain.Sync(ctx, "") // a cordoned node announces with the graceful-shutdown community from the start (never fails)
	speaker.trackPrefixes()
	if err := rec.SyncAllowedPrefixes(ctx); err != nil {
		logger.Info("initial allowed-prefix sync failed, will retry", "err", err)
	}
	for _, key := range caches.ServiceKeys() {
		if err := ann.SyncService(ctx, key); err != nil {
			logger.Info("initial service sync failed, will retry", "service", key, "err", err)
			queue.Add(key)
		}
	}
	if err := rec.Sync(ctx, peers.Key); err != nil { // pod CIDR routes, then the peers
		logger.Info("initial peer sync failed, will retry", "err", err)
		peersQueue.Add(peers.Key)
	}
	if err := dp.prune(ctx); err != nil {
		logger.Info("pruning stale datapath entries failed", "err", err)
	}
	// Paths announced from the state file that the first pass did not claim.
	for _, p := range speaker.untouched() {
		if err := speaker.Withdraw(ctx, p); err != nil {
			logger.Info("withdrawing a path of the state file failed", "prefix", p, "err", err)
		} else {
			logger.Info("withdrew a path of the state file no Service claims", "prefix", p)
		}
	}
	wg.Go(func() { speaker.runSaver(ctx, cfg.StateFile) })
	wg.Go(func() { queue.Run(ctx, cfg.Workers) })
	wg.Go(func() { peersQueue.Run(ctx, 1) })
	wg.Go(func() { drainQueue.Run(ctx, 1) })
	wg.Go(func() { nodeState.Run(ctx, 30*time.Second) })
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-speaker.Changes():
				nodeState.Trigger()
				obs.sessionsChanged(ctx, speaker)
			}
		}
	})

	// The correlator's LRU caches (aggregation and spam filter, one entry per object and
	// reason) default to 4096 entries each, ~2 MiB once 10k Services got an event; 512
	// still covers the objects that change repeatedly within the aggregation window.
	broadcaster := record.NewBroadcaster(record.WithContext(ctx),
		record.WithCorrelatorOptions(record.CorrelatorOptions{LRUCacheSize: eventCacheSize}))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	recorder := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "bgplb", Host: cfg.NodeName})
	obs.setRecorder(recorder)
	defer reg.ReportNotReady(recorder, metrics.EndpointsNotDatapathReady.Set)()

	if cfg.Mode != ModeNode { // with --mode=node the bgplb-allocator Deployment does it
		leaderWork := func(ctx context.Context) { runLeader(ctx, cfg, cs, caches, recorder) }
		if cfg.LeaderElect {
			wg.Go(func() { runLeaderElection(ctx, cfg, kube, leaderWork) })
		} else {
			wg.Go(func() { leaderWork(ctx) })
		}
	}

	hc.setStarted(queue)
	logger.Info("bgplbd ready")
	<-ctx.Done()
	hc.setStopping()
	logger.Info("shutting down: routes and datapath stay in place for the next daemon")
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// runLeader runs the LB-IPAM controller and the Announced aggregator until ctx is done.
func runLeader(ctx context.Context, cfg Config, cs clients, caches *watch.Caches, recorder record.EventRecorder) {
	logger := klog.FromContext(ctx)
	logger.Info("running as LB-IPAM leader")
	metrics.IsLeader.Set(1)
	defer metrics.IsLeader.Set(0)

	var ipamQueue *watch.Queue
	ctrl := lbipam.New(cs.ipam, cs.crd, lbipam.Sources{
		Services:        caches.Services,
		Pools:           caches.Pools(),
		NamespaceLabels: caches.NamespaceLabels,
	}, ipam.Config{Class: cfg.Class, DefaultClass: cfg.DefaultClass}, recorder, func(k string) { ipamQueue.Add(k) })
	ipamQueue = watch.NewQueue("lbipam", ctrl.Sync)
	metrics.SetPoolSource(ctrl.PoolUsage)
	defer metrics.SetPoolSource(nil)
	removeIPAM := caches.Subscribe(ipamQueue, watch.Triggers{
		Services:   true,
		Pools:      []string{lbipam.PoolsKey},
		Namespaces: []string{lbipam.PoolsKey},
	})
	defer removeIPAM()

	// Only the leader reads every Node and BGPNodeState (watch.Caches.EnableLeaderCaches).
	if err := caches.EnableLeaderCaches(ctx); err != nil {
		logger.Info("stopped before the BGPNodeStates synced", "err", err) // only when ctx ended
		return
	}
	// The leader plans every node with the node's own eligibility profile, reading the
	// node's registrations and sessions from its BGPNodeState.
	newEval := func(node string, eps eligibility.EndpointRegistry, sessions eligibility.SessionState) (announce.Evaluator, error) {
		if !cfg.Datapath {
			eps = nil
		}
		return eligibility.NewRunner(ctx, newPluginRegistry(), cfg.Profile, eligibility.NewHandle(node, eps, sessions))
	}
	agg := status.NewAggregator(cs.status, cs.crd, status.AggregatorSources{
		Services:       caches.Services,
		Slices:         caches.SlicesForService,
		Nodes:          caches.AllNodes(),
		NodeStates:     caches.NodeStates(),
		Peers:          caches.Peers(),
		Advertisements: caches.Advertisements(),
		Pools:          caches.Pools(),
	}, newEval, cfg.Class, cfg.DefaultClass)
	aggQueue := watch.NewQueue("announced", agg.Sync)
	removeAgg := caches.Subscribe(aggQueue, watch.Triggers{
		Services:         true,
		Slices:           true,
		Nodes:            []string{watch.AllServices},
		NodeStateChanges: status.NodeStateChanges,
		Peers:            []string{watch.AllServices, status.PeersKey},
		Advertisements:   []string{watch.AllServices},
		// An advertisement's poolSelector reads the pools' labels.
		Pools: []string{watch.AllServices},
	})
	defer removeAgg()

	var wg sync.WaitGroup
	wg.Go(func() { ipamQueue.Run(ctx, 1) }) // one worker: see lbipam's contract
	wg.Go(func() { aggQueue.Run(ctx, 2) })
	wg.Wait()
	logger.Info("stopped LB-IPAM leader work")
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		c, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("load in-cluster config (or pass --kubeconfig): %w", err)
		}
		return c, nil
	}
	c, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", kubeconfig, err)
	}
	return c, nil
}

// waitForNode gets this node's object, retrying until it exists or ctx is done. Each
// attempt is bounded, so an API server that accepts connections but does not answer
// (paused, overloaded) is retried too.
func waitForNode(ctx context.Context, kube kubernetes.Interface, name string) (*corev1.Node, error) {
	var node *corev1.Node
	err := wait.PollUntilContextCancel(ctx, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		actx, cancel := context.WithTimeout(ctx, nodeGetTimeout)
		defer cancel()
		n, err := kube.CoreV1().Nodes().Get(actx, name, metav1.GetOptions{})
		if err != nil {
			klog.FromContext(ctx).Info("waiting for the node object", "err", err)
			return false, nil
		}
		_, v4 := nodeIP(n, true)
		_, v6 := nodeIP(n, false)
		if !v4 && !v6 {
			klog.FromContext(ctx).Info("waiting for the node's InternalIP")
			return false, nil
		}
		node = n
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("get node %s: %w", name, err)
	}
	return node, nil
}

// nodeIP returns the node's first InternalIP of the family (v4 true: IPv4).
func nodeIP(n *corev1.Node, v4 bool) (netip.Addr, bool) {
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		ip, err := netip.ParseAddr(a.Address)
		if err == nil && ip.Unmap().Is4() == v4 {
			return ip.Unmap(), true
		}
	}
	return netip.Addr{}, false
}

// serveHTTP starts the metrics and health servers.
func serveHTTP(ctx context.Context, wg *sync.WaitGroup, cfg Config, hc *health) {
	logger := klog.FromContext(ctx)
	start := func(name, addr string, h http.Handler) {
		if addr == "" {
			return
		}
		srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
		wg.Go(func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error(err, "http server failed", "server", name, "address", addr)
			}
		})
		wg.Go(func() {
			<-ctx.Done()
			sctx, c := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer c()
			_ = srv.Shutdown(sctx) // best effort on exit
		})
	}
	metricsMux := http.NewServeMux()
	metricsMux.Handle("/metrics", legacyregistry.Handler())
	if cfg.Profiling {
		metricsMux.HandleFunc("/debug/pprof/", pprof.Index)
		metricsMux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		metricsMux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		metricsMux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		metricsMux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	healthMux := http.NewServeMux()
	hc.install(healthMux)
	if cfg.MetricsAddr == cfg.HealthAddr {
		metricsMux.Handle("/healthz", healthMux)
		metricsMux.Handle("/readyz", healthMux)
		start("metrics+health", cfg.MetricsAddr, metricsMux)
		return
	}
	start("metrics", cfg.MetricsAddr, metricsMux)
	start("health", cfg.HealthAddr, healthMux)
}

// hostname is used as a fallback identity.
func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "unknown"
	}
	return h
}
