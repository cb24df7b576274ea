package app

import (
	"context"
	"os"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/bgplb/bgplb/daemon/bgp"
)

// DrainAnnotation on a Node makes its bgplbd treat its next stop as a shutdown (drain),
// like a cordon does.
const DrainAnnotation = "bgplb.io/drain"

// stopSpeaker stops the speaker when the daemon exits. A restart (an upgrade, a crash
// loop, a SIGTERM on a schedulable node) stops without a Cease, so graceful-restart
// peers keep the node's routes while the next daemon starts. A shutdown for good — the
// node cordoned (kubectl drain) or annotated bgplb.io/drain, or the DaemonSet deleted —
// first announces every route with the GRACEFUL_SHUTDOWN community, waits
// cfg.DrainDelay for the routers to move new flows to other nodes, then stops with a
// Cease, which withdraws the routes (make-before-break).
func stopSpeaker(ctx context.Context, cfg Config, kube kubernetes.Interface, speaker bgp.Speaker) {
	logger := klog.FromContext(ctx)
	ctx = context.WithoutCancel(ctx)
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	shutdown, why := shuttingDown(qctx, kube, cfg.NodeName)
	cancel()
	if !shutdown {
		logger.Info("Stopping for a restart: peers keep the routes (graceful restart)", "reason", why)
		sctx, c := context.WithTimeout(ctx, 5*time.Second)
		defer c()
		if err := speaker.Stop(sctx, true); err != nil {
			logger.Info("stopping bgp speaker failed", "err", err)
		}
		return
	}
	logger.Info("Stopping for good: draining the routes", "reason", why, "delay", cfg.DrainDelay)
	gctx, c := context.WithTimeout(ctx, 5*time.Second)
	err := speaker.SetGracefulShutdown(gctx, true)
	c()
	if err != nil {
		logger.Info("announcing the graceful-shutdown community failed; withdrawing at once", "err", err)
	} else {
		time.Sleep(cfg.DrainDelay) // the routers move new flows while ours still work
	}
	sctx, c2 := context.WithTimeout(ctx, 5*time.Second)
	defer c2()
	if err := speaker.Stop(sctx, false); err != nil {
		logger.Info("stopping bgp speaker failed", "err", err)
	}
}

// shuttingDown reports whether this stop is for good (a drain) rather than a restart,
// with a stable camelCase reason. Every doubt answers false: a restart keeps routes.
func shuttingDown(ctx context.Context, kube kubernetes.Interface, nodeName string) (bool, string) {
	node, err := kube.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	if err == nil {
		if node.Spec.Unschedulable {
			return true, "nodeCordoned"
		}
		if _, ok := node.Annotations[DrainAnnotation]; ok {
			return true, "drainAnnotation"
		}
	}
	if removed, why := daemonSetRemoved(ctx, kube, os.Getenv("POD_NAMESPACE"), os.Getenv("POD_NAME")); removed {
		return true, why
	}
	return false, "restart"
}
