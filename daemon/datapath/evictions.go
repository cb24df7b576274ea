//go:build linux

package datapath

import (
	"context"
	"time"

	"k8s.io/klog/v2"

	"github.com/bgplb/bgplb/bpf"
	"github.com/bgplb/bgplb/daemon/metrics"
)

// ReportEvictions keeps the bgplb_datapath_lru_evictions_total counters (map="ct",
// map="revnat") at maps' eviction estimates (bpf.Maps.LRUEvictions), read every interval
// until ctx is done. The estimate only grows through positive deltas, so a momentary
// under-count does not make the counter go back.
func ReportEvictions(ctx context.Context, maps *bpf.Maps, interval time.Duration) {
	logger := klog.FromContext(ctx)
	var last bpf.Evictions
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		ev, err := maps.LRUEvictions()
		if err != nil {
			logger.V(2).Info("reading LRU eviction estimates failed", "err", err)
		} else {
			if ev.CT > last.CT {
				metrics.LRUEvictions.WithLabelValues("ct").Add(float64(ev.CT - last.CT))
				last.CT = ev.CT
			}
			if ev.RevNAT > last.RevNAT {
				metrics.LRUEvictions.WithLabelValues("revnat").Add(float64(ev.RevNAT - last.RevNAT))
				last.RevNAT = ev.RevNAT
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
