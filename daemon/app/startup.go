package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
)

const (
	// apiWaitBeforeState is how long the daemon waits for its Node object before it
	// announces from the state file; well within graceful restart's restart time (120 s
	// by default), so the routers never drop the node's routes.
	apiWaitBeforeState = 10 * time.Second
	// nodeGetTimeout bounds one attempt to get the Node object.
	nodeGetTimeout = 5 * time.Second
)

// startNode returns this node's object. When the API server does not give it within
// apiWaitBeforeState and the state file holds a previous daemon's state, it first starts
// the speaker from that state (fromState true: the speaker is started), then keeps
// waiting; the datapath's pinned programs and maps keep forwarding meanwhile.
func startNode(ctx context.Context, cfg Config, kube kubernetes.Interface, speaker *recordingSpeaker) (node *corev1.Node, fromState bool, err error) {
	logger := klog.FromContext(ctx)
	wctx, cancel := context.WithTimeout(ctx, apiWaitBeforeState)
	node, err = waitForNode(wctx, kube, cfg.NodeName)
	cancel()
	if err == nil || ctx.Err() != nil {
		return node, false, err
	}
	st, lerr := loadState(cfg.StateFile)
	switch {
	case lerr != nil:
		logger.Info("the API server does not answer and there is no usable state file: waiting", "err", lerr)
	default:
		logger.Info("the API server does not answer: announcing the state saved by the previous daemon until it does",
			"stateFile", cfg.StateFile, "saved", st.Saved, "paths", len(st.Paths), "peers", len(st.Peers), "reason", "apiServerUnreachable")
		if err := startFromState(ctx, speaker, st); err != nil {
			if !errors.Is(err, context.Canceled) && !speaker.isStarted() {
				return nil, false, err
			}
			logger.Info("starting from the state file was incomplete", "err", err)
		}
		fromState = speaker.isStarted()
	}
	node, err = waitForNode(ctx, kube, cfg.NodeName)
	if err != nil {
		return nil, fromState, fmt.Errorf("wait for the API server: %w", err)
	}
	logger.Info("the API server answers: catching up", "fromState", fromState)
	return node, fromState, nil
}
