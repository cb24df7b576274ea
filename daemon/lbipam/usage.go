package lbipam

import "github.com/bgplb/bgplb/daemon/metrics"

// PoolUsage returns each pool's size and use per family from the allocator (a
// metrics.PoolSource; cheap: one pass over the pools' blocks under the allocator's lock).
func (c *Controller) PoolUsage() []metrics.PoolSample {
	var out []metrics.PoolSample
	for _, ps := range c.alloc.Pools() {
		if v4 := ps.Status.IPv4; v4 != nil {
			out = append(out, metrics.PoolSample{Pool: ps.Name, Family: "IPv4", Total: v4.Total, Used: v4.Used})
		}
		if v6 := ps.Status.IPv6; v6 != nil {
			out = append(out, metrics.PoolSample{Pool: ps.Name, Family: "IPv6", Total: v6.Total, Used: v6.Used})
		}
	}
	return out
}
