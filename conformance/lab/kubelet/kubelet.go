package kubelet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

// Config is one lab node's kubelet configuration.
type Config struct {
	NodeName      string
	Kubeconfig    string
	NodeIPs       []netip.Addr // InternalIPs (v4 first, optional v6)
	PodCIDRs      []netip.Prefix
	CNIConfDir    string // holds one *.conflist (ptp + host-local; later bgplb chained after)
	CNIBinDir     string
	CNICacheDir   string
	StateDir      string // per-node; pid files here, *.pid = a process the lab must kill on teardown
	PodserverPath string
}

func (c Config) validate() error {
	var errs []error
	if c.NodeName == "" {
		errs = append(errs, errors.New("node name is empty"))
	}
	if c.Kubeconfig == "" {
		errs = append(errs, errors.New("kubeconfig is empty"))
	}
	if len(c.NodeIPs) == 0 {
		errs = append(errs, errors.New("no node IPs"))
	}
	for _, ip := range c.NodeIPs {
		if !ip.IsValid() {
			errs = append(errs, errors.New("invalid node IP"))
		}
	}
	for _, d := range []struct{ name, v string }{
		{"CNI configuration directory", c.CNIConfDir}, {"CNI binary directory", c.CNIBinDir},
		{"CNI cache directory", c.CNICacheDir}, {"state directory", c.StateDir}, {"podserver path", c.PodserverPath},
	} {
		if d.v == "" {
			errs = append(errs, fmt.Errorf("%s is empty", d.name))
		}
	}
	if c.PodserverPath != "" {
		if _, err := os.Stat(c.PodserverPath); err != nil {
			errs = append(errs, fmt.Errorf("podserver: %w", err))
		}
	}
	return errors.Join(errs...)
}

// withAbsPodserver makes PodserverPath absolute with symlinks resolved, as it
// appears in /proc/<pid>/exe (the lab's teardown compares the two).
func (c Config) withAbsPodserver() (Config, error) {
	p, err := filepath.Abs(c.PodserverPath)
	if err != nil {
		return c, fmt.Errorf("resolve podserver path %s: %w", c.PodserverPath, err)
	}
	if p, err = filepath.EvalSymlinks(p); err != nil {
		return c, fmt.Errorf("resolve podserver path %s: %w", c.PodserverPath, err)
	}
	c.PodserverPath = p
	return c, nil
}

// kubelet is the state of one Run.
type kubelet struct {
	cfg    Config
	client kubernetes.Interface
	lister corelisters.PodLister
	net    *network
	netns  *netnsManager
	store  stateStore
	prober *prober
	ctx    context.Context

	mu       sync.Mutex
	workers  map[types.UID]*podWorker // pod UID -> its worker
	records  map[types.UID]podRecord  // pod UID -> record of a previous run not yet claimed by a worker
	finished map[types.UID]bool       // pod UID -> worker done; never start another
	wg       sync.WaitGroup
}

// Run registers the node and runs its pods until ctx is done. Pod processes
// and namespaces are left running on return (like a kubelet restart); the next
// Run adopts them.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.validate(); err != nil {
		return fmt.Errorf("validate kubelet config: %w", err)
	}
	cfg, err := cfg.withAbsPodserver()
	if err != nil {
		return err
	}
	logger := klog.FromContext(ctx).WithValues("node", cfg.NodeName)
	ctx = klog.NewContext(ctx, logger)

	restCfg, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig %s: %w", cfg.Kubeconfig, err)
	}
	restCfg.QPS, restCfg.Burst = 50, 100
	restCfg.UserAgent = "bgplb-lab-kubelet/" + cfg.NodeName
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("create Kubernetes client: %w", err)
	}
	hostMountNS := openParentMountNS(logger)
	if hostMountNS != nil {
		defer hostMountNS.Close()
	}
	return runWith(ctx, cfg, client, hostMountNS)
}

// runWith runs the kubelet with a ready client; Run's tests use a fake one.
func runWith(ctx context.Context, cfg Config, client kubernetes.Interface, hostMountNS *os.File) error {
	for _, d := range []string{cfg.StateDir, filepath.Join(cfg.StateDir, "pods"), cfg.CNICacheDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create directory %s: %w", d, err)
		}
	}
	k := &kubelet{
		cfg:      cfg,
		client:   client,
		net:      newNetwork(cfg.CNIBinDir, cfg.CNIConfDir, cfg.CNICacheDir, nil),
		netns:    &netnsManager{hostMountNS: hostMountNS},
		store:    stateStore{Dir: filepath.Join(cfg.StateDir, "pods")},
		prober:   newProber(),
		ctx:      ctx,
		workers:  map[types.UID]*podWorker{},
		records:  map[types.UID]podRecord{},
		finished: map[types.UID]bool{},
	}
	return k.run(ctx)
}

func (k *kubelet) run(ctx context.Context) error {
	logger := klog.FromContext(ctx)

	// Register the node; the API server may still be starting.
	readySince := time.Now()
	var node *corev1.Node
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		n, err := registerNode(ctx, k.client, k.cfg, readySince)
		if err != nil {
			logger.Info("node registration failed; retrying", "err", err)
			return false, nil
		}
		node = n
		return true, nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped before the API server answered
		}
		return fmt.Errorf("register node %s: %w", k.cfg.NodeName, err)
	}
	if err := renewLease(ctx, k.client, node, time.Now()); err != nil {
		logger.Error(err, "create node lease")
	}
	var bg sync.WaitGroup
	defer bg.Wait()
	bg.Add(1)
	go func(node *corev1.Node) {
		defer bg.Done()
		wait.UntilWithContext(ctx, func(ctx context.Context) {
			err := heartbeat(ctx, k.client, node, readySince)
			if apierrors.IsNotFound(err) {
				// Someone deleted the Node: register it again, as a kubelet does.
				logger.Info("node object is gone; registering again")
				if n, regErr := registerNode(ctx, k.client, k.cfg, readySince); regErr == nil {
					node = n
					err = renewLease(ctx, k.client, node, time.Now())
				} else {
					err = regErr
				}
			}
			if err != nil && ctx.Err() == nil {
				logger.Error(err, "node heartbeat")
			}
		}, heartbeatPeriod)
	}(node)

	// Records of a previous run, loaded before any pod event can claim them.
	recs, err := k.store.list()
	if err != nil {
		logger.Error(err, "some pod records could not be read")
	}
	for _, r := range recs {
		k.records[r.UID] = r
	}

	factory := informers.NewSharedInformerFactoryWithOptions(k.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", k.cfg.NodeName).String()
		}))
	podInformer := factory.Core().V1().Pods()
	k.lister = podInformer.Lister()
	if _, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { k.podEvent(obj) },
		UpdateFunc: func(_, obj any) { k.podEvent(obj) },
		DeleteFunc: func(obj any) { k.podEvent(obj) },
	}); err != nil {
		return fmt.Errorf("add pod event handler: %w", err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("sync %v informer", typ)
		}
	}
	// Every pod in the cache gets a worker (handlers may still be delivering);
	// then records of pods that no longer exist get one that cleans them up.
	pods, err := k.lister.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("list pods: %w", err)
	}
	for _, p := range pods {
		k.ensureWorker(p.UID, p.Namespace, p.Name)
	}
	k.mu.Lock()
	var orphans []podRecord
	for _, r := range k.records {
		orphans = append(orphans, r)
	}
	k.mu.Unlock()
	for _, r := range orphans {
		logger.Info("pod of a previous run no longer exists; cleaning up", "pod", klog.KRef(r.Namespace, r.Name), "podUID", r.UID)
		k.ensureWorker(r.UID, r.Namespace, r.Name)
	}
	logger.Info("lab kubelet running", "pods", len(pods), "podCIDRs", node.Spec.PodCIDRs)

	<-ctx.Done()
	// An ensureWorker that saw the context alive has finished its wg.Add once
	// we hold the lock; later ones see it done and add nothing.
	k.mu.Lock()
	running := len(k.workers)
	k.mu.Unlock()
	logger.V(2).Info("stopping pod workers", "workers", running)
	k.wg.Wait()
	logger.Info("lab kubelet stopped; pod processes keep running")
	return nil
}

// podEvent routes an informer event to the pod's worker.
func (k *kubelet) podEvent(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	k.ensureWorker(pod.UID, pod.Namespace, pod.Name)
}

// ensureWorker starts the pod's worker unless it runs or has finished, and wakes it.
func (k *kubelet) ensureWorker(uid types.UID, namespace, name string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if w, ok := k.workers[uid]; ok {
		w.kick()
		return
	}
	if k.finished[uid] || k.ctx.Err() != nil {
		return
	}
	w := &podWorker{
		k:         k,
		uid:       uid,
		namespace: namespace,
		name:      name,
		logger:    klog.FromContext(k.ctx).WithValues("pod", klog.KRef(namespace, name), "podUID", uid),
		notify:    make(chan struct{}, 1),
	}
	if rec, ok := k.records[uid]; ok {
		delete(k.records, uid)
		w.adoptRec = &rec
	}
	k.workers[uid] = w
	k.wg.Add(1)
	go w.run(k.ctx)
}

// workerDone forgets a finished worker.
func (k *kubelet) workerDone(uid types.UID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.workers, uid)
	if k.ctx.Err() == nil {
		k.finished[uid] = true
	}
	k.wg.Done()
}

// getPod returns the cached pod when it still has uid, nil otherwise.
func (k *kubelet) getPod(namespace, name string, uid types.UID) *corev1.Pod {
	if k.lister == nil {
		return nil
	}
	pod, err := k.lister.Pods(namespace).Get(name)
	if err != nil {
		if !apierrors.IsNotFound(err) {
			klog.FromContext(k.ctx).Error(err, "get pod from cache", "pod", klog.KRef(namespace, name))
		}
		return nil
	}
	if pod.UID != uid {
		return nil
	}
	return pod
}
