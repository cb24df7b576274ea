package metrics

import (
	"sync"

	"k8s.io/component-base/metrics"
	"k8s.io/klog/v2"
)

// FrontendSample is the request counters of one datapath frontend (VIP, port, protocol)
// of a Service, read from the eBPF per-CPU counters (lb_svc_stats).
type FrontendSample struct {
	Service  string // namespace/name
	VIP      string
	Port     string
	Protocol string
	Packets  uint64
	Bytes    uint64
}

// DatapathSample is everything the datapath collector reports on one scrape.
type DatapathSample struct {
	Frontends []FrontendSample
	// Drops are the uplink program's drop counters (lb_drops) by reason name.
	Drops map[string]uint64
}

// DatapathSource reads the counters; it is called on every scrape.
type DatapathSource func() (DatapathSample, error)

var (
	frontendLabels    = []string{"service", "vip", "port", "protocol"}
	datapathPackets   = metrics.NewDesc(namespace+"_datapath_service_packets_total", "Packets the eBPF datapath delivered to local backends of the Service's frontend (VIP, port, protocol), request direction.", frontendLabels, nil, metrics.ALPHA, "")
	datapathBytes     = metrics.NewDesc(namespace+"_datapath_service_bytes_total", "Bytes the eBPF datapath delivered to local backends of the Service's frontend (VIP, port, protocol), request direction.", frontendLabels, nil, metrics.ALPHA, "")
	datapathDropsDesc = metrics.NewDesc(namespace+"_datapath_drops_total", "Packets to a VIP the eBPF datapath dropped, by reason (noLocalBackend, sourceRange, noBackend, fragment, malformed, conntrackFull, noService).", []string{"reason"}, nil, metrics.ALPHA, "")
)

// datapathCollector reads the datapath counters from a DatapathSource on each scrape:
// the kernel keeps the counts, so they are never stale and a removed frontend's series
// disappears with its map entry.
type datapathCollector struct {
	metrics.BaseStableCollector

	mu  sync.Mutex
	src DatapathSource
}

var datapathCounters = &datapathCollector{}

// SetDatapathSource sets where the datapath counters come from (nil: none reported, as
// with --datapath=false).
func SetDatapathSource(src DatapathSource) {
	datapathCounters.mu.Lock()
	defer datapathCounters.mu.Unlock()
	datapathCounters.src = src
}

// DescribeWithStability implements metrics.StableCollector.
func (c *datapathCollector) DescribeWithStability(ch chan<- *metrics.Desc) {
	ch <- datapathPackets
	ch <- datapathBytes
	ch <- datapathDropsDesc
}

// CollectWithStability implements metrics.StableCollector.
func (c *datapathCollector) CollectWithStability(ch chan<- metrics.Metric) {
	c.mu.Lock()
	src := c.src
	c.mu.Unlock()
	if src == nil {
		return
	}
	s, err := src()
	if err != nil {
		klog.V(2).InfoS("datapath counters unavailable", "err", err)
		return
	}
	for _, f := range s.Frontends {
		ch <- metrics.NewLazyConstMetric(datapathPackets, metrics.CounterValue, float64(f.Packets), f.Service, f.VIP, f.Port, f.Protocol)
		ch <- metrics.NewLazyConstMetric(datapathBytes, metrics.CounterValue, float64(f.Bytes), f.Service, f.VIP, f.Port, f.Protocol)
	}
	for reason, n := range s.Drops {
		ch <- metrics.NewLazyConstMetric(datapathDropsDesc, metrics.CounterValue, float64(n), reason)
	}
}
