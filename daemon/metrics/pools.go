package metrics

import (
	"sync"

	"k8s.io/component-base/metrics"
)

// PoolSample is the address usage of one LoadBalancerIPPool in one IP family.
type PoolSample struct {
	Pool   string
	Family string // IPv4 or IPv6
	// Total is the number of usable addresses (saturated at MaxInt64 for huge IPv6
	// ranges); Used the number assigned to at least one Service.
	Total, Used int64
}

// PoolSource lists the pools' usage; it is called on every scrape and must be cheap.
type PoolSource func() []PoolSample

var (
	poolLabels       = []string{"pool", "family"}
	poolAddresses    = metrics.NewDesc(namespace+"_pool_addresses", "Number of usable addresses of the pool, by IP family (LB-IPAM leader only).", poolLabels, nil, metrics.ALPHA, "")
	poolAddressesUse = metrics.NewDesc(namespace+"_pool_addresses_used", "Number of addresses of the pool assigned to at least one Service, by IP family (LB-IPAM leader only).", poolLabels, nil, metrics.ALPHA, "")
)

// poolCollector reads the per-pool series from a PoolSource on each scrape; only the
// LB-IPAM leader has one, so the series come from exactly one daemon.
type poolCollector struct {
	metrics.BaseStableCollector

	mu  sync.Mutex
	src PoolSource
}

var pools = &poolCollector{}

// SetPoolSource sets where the per-pool metrics come from (nil: none are reported, as on
// a daemon that is not the LB-IPAM leader).
func SetPoolSource(src PoolSource) {
	pools.mu.Lock()
	defer pools.mu.Unlock()
	pools.src = src
}

// DescribeWithStability implements metrics.StableCollector.
func (c *poolCollector) DescribeWithStability(ch chan<- *metrics.Desc) {
	ch <- poolAddresses
	ch <- poolAddressesUse
}

// CollectWithStability implements metrics.StableCollector.
func (c *poolCollector) CollectWithStability(ch chan<- metrics.Metric) {
	c.mu.Lock()
	src := c.src
	c.mu.Unlock()
	if src == nil {
		return
	}
	for _, s := range src() {
		ch <- metrics.NewLazyConstMetric(poolAddresses, metrics.GaugeValue, float64(s.Total), s.Pool, s.Family)
		ch <- metrics.NewLazyConstMetric(poolAddressesUse, metrics.GaugeValue, float64(s.Used), s.Pool, s.Family)
	}
}
