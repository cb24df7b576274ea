package kubelet

import (
	"context"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
)

const (
	initialBackoff = time.Second
	maxBackoff     = 16 * time.Second
	// statusResync bounds how long a patched status is trusted while the
	// informer has not shown it yet.
	statusResync = 5 * time.Second
	// defaultGrace applies when a deleted pod names no grace period.
	defaultGrace = 30 * time.Second
)

// podWorker owns one pod (by UID) from first sight until its resources are gone.
// Only its own goroutine touches its fields.
type podWorker struct {
	k         *kubelet
	uid       types.UID
	namespace string
	name      string
	logger    klog.Logger
	notify    chan struct{}

	adoptRec *podRecord // a previous run's record, adopted when the worker starts
	rec      *podRecord // nil until setup began
	proc     *process   // the running podserver, if any
	probeIP  netip.Addr
	port     int // TCP port probed

	netLost bool // the recorded namespace vanished: release the old attachment before re-adding
	running bool // the process has answered a probe
	ready   readiness
	// lastProbe is when the last readiness probe started.
	lastProbe time.Time
	setupErr  string
	backoff   time.Duration
	retryAt   time.Time

	terminating bool
	killAt      time.Time

	lastPatch     *corev1.PodStatus
	lastPatchTime time.Time
}

func (w *podWorker) kick() {
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// adopt takes over the state of a previous kubelet run for this pod: a live
// process in a live namespace is kept; a process whose namespace this kubelet
// can no longer see is stopped and the pod is set up again.
func (w *podWorker) adopt(rec podRecord, pod *corev1.Pod) {
	w.rec = &rec
	var proc *process
	pid, err := w.k.store.readPID(rec.UID)
	if err != nil {
		w.logger.Info("cannot read the pod's PID file; the process will be started again", "err", err)
	} else if pid != 0 {
		if p, ok := adoptProcess(pid, w.k.cfg.PodserverPath, rec.Name); ok {
			proc = p
		} else {
			w.logger.Info("recorded pod process is gone; it will be started again", "pid", pid)
		}
	}
	if rec.Netns != "" && !isNetns(netnsPath(rec.Netns)) {
		w.netLost = true
		w.logger.Info("pod namespace is gone; the pod network will be set up again", "netns", rec.Netns)
		if proc != nil {
			if err := proc.kill(); err != nil {
				w.logger.Error(err, "stop the process of a lost pod namespace")
			}
		}
		return
	}
	if proc == nil {
		return
	}
	w.proc = proc
	if pod != nil {
		w.running = pod.Status.Phase == corev1.PodRunning
		w.ready.ready = isReady(pod)
		w.setProbeTarget(pod)
	}
	w.logger.Info("adopted running pod", "pid", pid, "netns", rec.Netns, "ips", rec.IPs)
}

// run is the worker loop: it syncs on every notification and when the
// duration returned by the previous sync has passed.
func (w *podWorker) run(ctx context.Context) {
	defer w.k.workerDone(w.uid)
	ctx = klog.NewContext(ctx, w.logger)
	if w.adoptRec != nil {
		w.adopt(*w.adoptRec, w.k.getPod(w.namespace, w.name, w.uid))
		w.adoptRec = nil
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.notify:
		case <-timer.C:
		}
		next, done := w.sync(ctx)
		if done {
			return
		}
		timer.Reset(next)
	}
}

// sync moves the pod one step towards what its API object asks for. It
// returns when to run again, or done when the worker has nothing left to do.
func (w *podWorker) sync(ctx context.Context) (time.Duration, bool) {
	pod := w.k.getPod(w.namespace, w.name, w.uid)
	if pod == nil {
		if err := w.cleanup(ctx); err != nil {
			w.logger.Error(err, "cleaning up a deleted pod failed; retrying")
			return w.nextBackoff(), false
		}
		w.logger.Info("pod gone; its resources are released")
		return 0, true
	}
	if pod.DeletionTimestamp != nil {
		return w.terminate(ctx, pod)
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		if err := w.cleanup(ctx); err != nil {
			w.logger.Error(err, "cleaning up a finished pod failed; retrying")
			return w.nextBackoff(), false
		}
		return 0, true
	}

	if w.proc != nil && !w.proc.alive() {
		w.logger.Info("pod process exited; restarting it", "pid", w.proc.pid, "restartCount", w.rec.RestartCount+1)
		w.proc = nil
		w.running = false
		w.ready = readiness{}
		w.rec.RestartCount++
		if err := w.k.store.removePID(w.uid); err != nil {
			w.logger.Error(err, "remove stale PID file")
		}
		w.retryAt = time.Now().Add(w.nextBackoff())
	}
	if w.proc == nil {
		if wait := time.Until(w.retryAt); wait > 0 {
			w.syncStatus(ctx, pod)
			return wait, false
		}
		if err := w.setup(ctx, pod); err != nil {
			w.setupErr = err.Error()
			delay := w.nextBackoff()
			w.retryAt = time.Now().Add(delay)
			w.logger.Error(err, "pod setup failed; retrying", "backoff", delay)
			w.syncStatus(ctx, pod)
			return delay, false
		}
		w.setupErr = ""
	}
	next := w.probe(ctx)
	w.syncStatus(ctx, pod)
	return next, false
}

func (w *podWorker) nextBackoff() time.Duration {
	if w.backoff == 0 {
		w.backoff = initialBackoff
	} else if w.backoff < maxBackoff {
		w.backoff *= 2
	}
	return w.backoff
}

// setProbeTarget picks the address and port probed: the first pod IP (IPv4
// first) and the first TCP port the process serves.
func (w *podWorker) setProbeTarget(pod *corev1.Pod) {
	spec := specForPod(pod, w.k.cfg.PodserverPath, "", "")
	w.port = spec.TCP[0]
	if w.rec != nil && len(w.rec.IPs) > 0 {
		w.probeIP = w.rec.IPs[0]
	}
}

// setup makes whatever is missing: record, namespace, network, process.
// Each step is idempotent, so a failed setup is simply run again.
func (w *podWorker) setup(ctx context.Context, pod *corev1.Pod) error {
	k := w.k
	if w.rec == nil {
		rec := podRecord{
			UID:         pod.UID,
			Namespace:   pod.Namespace,
			Name:        pod.Name,
			ContainerID: containerIDFor(pod.UID),
			StartTime:   time.Now(),
		}
		if !pod.Spec.HostNetwork {
			rec.Netns = netnsNameFor(k.cfg.NodeName, pod.UID)
		}
		if err := k.store.put(rec); err != nil {
			return err
		}
		w.rec = &rec
	}
	if w.rec.Netns != "" {
		if w.netLost {
			// Release the old attachment (IP, host veth) before adding again.
			if err := w.releaseNetwork(ctx); err != nil {
				return err
			}
			w.rec.IPs = nil
			if err := k.store.put(*w.rec); err != nil {
				return err
			}
			w.netLost = false
		}
		if err := k.netns.ensure(ctx, w.rec.Netns); err != nil {
			return err
		}
		if len(w.rec.IPs) == 0 {
			ips, err := k.net.add(ctx, w.rec.attachment())
			if err != nil {
				return err
			}
			w.rec.IPs = ips
			if err := k.store.put(*w.rec); err != nil {
				return err
			}
			w.logger.Info("pod network added", "netns", w.rec.Netns, "ips", ips)
		}
	} else if len(w.rec.IPs) == 0 {
		w.rec.IPs = append([]netip.Addr(nil), k.cfg.NodeIPs...)
	}
	spec := specForPod(pod, k.cfg.PodserverPath, w.rec.Netns, k.store.logPath(w.uid))
	proc, err := startProcess(spec)
	if err != nil {
		return err
	}
	if err := k.store.writePID(w.uid, proc.pid, k.cfg.PodserverPath); err != nil {
		// Untracked, the lab's teardown could not find it: do not keep it.
		if killErr := proc.kill(); killErr != nil {
			w.logger.Error(killErr, "stop a pod process without a PID file")
		}
		return err
	}
	w.proc = proc
	w.rec.ProcessStarted = time.Now()
	if err := k.store.put(*w.rec); err != nil {
		return err
	}
	w.setProbeTarget(pod)
	w.logger.Info("pod process started", "pid", proc.pid, "tcp", spec.TCP, "udp", spec.UDP)
	return nil
}

// probe runs one readiness probe and updates running/ready.
// Probes run at most once per probePeriod however often the worker is woken
// (every status patch comes back as a pod event), so the failure threshold
// keeps meaning time. probe returns when the next one is due.
func (w *podWorker) probe(ctx context.Context) time.Duration {
	if wait := probePeriod - time.Since(w.lastProbe); wait > 0 {
		return wait
	}
	w.lastProbe = time.Now()
	if w.proc == nil || !w.probeIP.IsValid() {
		return probePeriod
	}
	res, err := w.k.prober.probe(ctx, w.probeIP, w.port)
	if res.answered && !w.running {
		w.running = true
		w.backoff = 0
		w.logger.Info("pod process answers")
	}
	if !w.running {
		return probePeriod
	}
	if w.ready.observe(res.ok) {
		w.logger.Info("pod readiness changed", "ready", w.ready.ready, "probeError", errString(err))
	}
	return probePeriod
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// view is the kubelet's knowledge of the pod, for buildStatus.
func (w *podWorker) view() podView {
	v := podView{
		SetupError: w.setupErr,
		Running:    w.running && w.proc != nil,
		Ready:      w.ready.ready,
	}
	if w.rec != nil {
		v.IPs = w.rec.IPs
		v.StartTime = w.rec.StartTime
		v.ProcessStarted = w.rec.ProcessStarted
		v.RestartCount = w.rec.RestartCount
		v.ContainerID = w.rec.ContainerID
	}
	if v.SetupError != "" {
		v.Running = false
	}
	return v
}

// syncStatus patches the pod status when it differs from what we know.
func (w *podWorker) syncStatus(ctx context.Context, pod *corev1.Pod) {
	if w.rec == nil && w.setupErr == "" {
		return
	}
	now := time.Now()
	want := buildStatus(pod, w.k.cfg.NodeIPs, w.view(), now)
	if statusUpToDate(pod.Status, want) {
		return
	}
	if w.lastPatch != nil && statusUpToDate(*w.lastPatch, want) && now.Sub(w.lastPatchTime) < statusResync {
		return // patched already; the informer has not caught up yet
	}
	patch, err := statusPatch(want)
	if err != nil {
		w.logger.Error(err, "build pod status patch")
		return
	}
	if _, err := w.k.client.CoreV1().Pods(w.namespace).Patch(ctx, w.name, types.MergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
		w.logger.Error(err, "patch pod status")
		return
	}
	w.lastPatch, w.lastPatchTime = &want, now
	w.logger.V(2).Info("pod status patched", "phase", want.Phase, "ready", w.view().Ready, "podIPs", want.PodIPs)
}

// terminate handles a pod with a deletionTimestamp: SIGTERM once, keep probing
// (readiness falls like a real probe) until the process exits or the grace
// period ends (SIGKILL), then release everything and delete the Pod object.
func (w *podWorker) terminate(ctx context.Context, pod *corev1.Pod) (time.Duration, bool) {
	now := time.Now()
	if !w.terminating {
		w.terminating = true
		grace := defaultGrace
		if pod.DeletionGracePeriodSeconds != nil {
			grace = time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
		} else if pod.Spec.TerminationGracePeriodSeconds != nil {
			grace = time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
		}
		if w.rec != nil && !w.rec.TerminationStarted.IsZero() {
			// A previous run already sent SIGTERM: keep its deadline, do not
			// signal again (a second signal may end the grace period early).
			w.killAt = w.rec.TerminationStarted.Add(grace)
			w.logger.Info("pod terminating (continued from a previous run)", "grace", grace, "killAt", w.killAt)
		} else {
			w.killAt = now.Add(grace)
			w.logger.Info("pod terminating", "grace", grace)
			if w.rec != nil {
				w.rec.TerminationStarted = now
				if err := w.k.store.put(*w.rec); err != nil {
					w.logger.Error(err, "record termination start")
				}
			}
			if w.proc != nil {
				if err := w.proc.signal(syscall.SIGTERM); err != nil {
					w.logger.Error(err, "SIGTERM pod process")
				}
			}
		}
	}
	if w.proc.alive() && now.Before(w.killAt) {
		next := w.probe(ctx)
		w.syncStatus(ctx, pod)
		return min(next, time.Until(w.killAt)), false
	}
	if w.proc.alive() {
		w.logger.Info("grace period over; killing the pod process", "pid", w.proc.pid)
	}
	if err := w.cleanup(ctx); err != nil {
		w.logger.Error(err, "releasing a terminated pod failed; retrying")
		return w.nextBackoff(), false
	}
	err := w.k.client.CoreV1().Pods(w.namespace).Delete(ctx, w.name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: ptr.To(w.uid)},
	})
	switch {
	case err == nil, apierrors.IsNotFound(err), apierrors.IsConflict(err):
		w.logger.Info("pod terminated and deleted")
		return 0, true
	default:
		w.logger.Error(err, "delete pod; retrying")
		return w.nextBackoff(), false
	}
}

// cleanup kills the process and releases network, namespace and state. It is
// idempotent and safe when setup never ran.
func (w *podWorker) cleanup(ctx context.Context) error {
	if w.proc != nil {
		if err := w.proc.kill(); err != nil {
			return err
		}
		w.proc = nil
	}
	if w.rec == nil {
		return nil
	}
	if w.rec.Netns != "" {
		if err := w.releaseNetwork(ctx); err != nil {
			return err
		}
	}
	if err := w.k.store.remove(w.uid); err != nil {
		return fmt.Errorf("remove pod state: %w", err)
	}
	w.rec = nil
	return nil
}

// releaseNetwork runs CNI DEL and deletes the pod namespace. A namespace file
// that is no longer a live namespace (its mount is gone) is removed first, so
// the plugins see a missing namespace (which DEL tolerates) instead of a file
// that is not one (which it does not).
func (w *podWorker) releaseNetwork(ctx context.Context) error {
	if !isNetns(netnsPath(w.rec.Netns)) {
		if err := w.k.netns.remove(ctx, w.rec.Netns); err != nil {
			return err
		}
	}
	if err := w.k.net.del(ctx, w.rec.attachment()); err != nil {
		return err
	}
	return w.k.netns.remove(ctx, w.rec.Netns)
}
