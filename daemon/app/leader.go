package app

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

// runLeaderElection campaigns for the LB-IPAM Lease until ctx is done, running work while
// it leads; after losing the lease it campaigns again.
func runLeaderElection(ctx context.Context, cfg Config, kube kubernetes.Interface, work func(context.Context)) {
	logger := klog.FromContext(ctx)
	identity := cfg.NodeName
	if identity == "" || cfg.Mode == ModeAllocator { // replicas may share a node: the pod's name
		identity = hostname()
	}
	if identity == "" {
		identity = hostname()
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: cfg.LeaseNamespace, Name: cfg.LeaseName},
		Client:     kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: identity},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   cfg.LeaseDuration,
			RenewDeadline:   cfg.RenewDeadline,
			RetryPeriod:     cfg.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            cfg.LeaseName,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: work,
				OnStoppedLeading: func() { logger.Info("LB-IPAM leadership lost or released") },
				OnNewLeader: func(id string) {
					if id != identity {
						logger.Info("LB-IPAM leader elected", "leader", id)
					}
				},
			},
		})
		if err != nil {
			logger.Error(err, "leader election misconfigured")
			return
		}
		le.Run(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(cfg.RetryPeriod):
		}
	}
}
