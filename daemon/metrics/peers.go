package metrics

import (
	"context"
	"sync"
	"time"

	"k8s.io/component-base/metrics"
	"k8s.io/klog/v2"
)

// PeerSample is one BGP neighbour of this node as the per-peer metrics report it.
type PeerSample struct {
	Name    string // BGPPeer name
	Address string // neighbour address
	Up      bool   // the session is Established
	// EstablishedSince is when the session came up (zero when down or unknown).
	EstablishedSince time.Time
	PrefixesSent     uint64
	// BFD is the peer's BFD session; nil when the peer has none.
	BFD *BFDSample
}

// BFDSample is one BFD session as the metrics report it.
type BFDSample struct {
	Up                    bool
	Downs                 uint64
	PacketsIn, PacketsOut uint64
}

// PeerSource lists the node's configured neighbours; it is called on every scrape.
type PeerSource func(ctx context.Context) ([]PeerSample, error)

// peerScrapeTimeout bounds one PeerSource call.
const peerScrapeTimeout = 2 * time.Second

var (
	peerLabels     = []string{"peer", "address"}
	peerSessionUp  = metrics.NewDesc(namespace+"_bgp_peer_session_up", "1 while the BGP session with the peer is Established, else 0.", peerLabels, nil, metrics.ALPHA, "")
	peerUptime     = metrics.NewDesc(namespace+"_bgp_peer_established_seconds", "Seconds since the BGP session with the peer became Established; 0 while it is down.", peerLabels, nil, metrics.ALPHA, "")
	peerPrefixSent = metrics.NewDesc(namespace+"_bgp_peer_prefixes_sent", "Number of prefixes advertised to the peer.", peerLabels, nil, metrics.ALPHA, "")
	bfdUp          = metrics.NewDesc(namespace+"_bfd_session_up", "1 while the BFD session with the peer is Up, else 0.", peerLabels, nil, metrics.ALPHA, "")
	bfdDowns       = metrics.NewDesc(namespace+"_bfd_session_downs_total", "Transitions of the BFD session with the peer from Up (each shut the BGP session down).", peerLabels, nil, metrics.ALPHA, "")
	bfdPacketsIn   = metrics.NewDesc(namespace+"_bfd_packets_received_total", "Valid BFD control packets received from the peer.", peerLabels, nil, metrics.ALPHA, "")
	bfdPacketsOut  = metrics.NewDesc(namespace+"_bfd_packets_sent_total", "BFD control packets sent to the peer.", peerLabels, nil, metrics.ALPHA, "")
)

// peerCollector reads the per-peer series from a PeerSource on each scrape, so they
// never go stale and removed peers disappear.
type peerCollector struct {
	metrics.BaseStableCollector

	mu  sync.Mutex
	src PeerSource
	now func() time.Time
}

var peers = &peerCollector{now: time.Now}

// SetPeerSource sets where the per-peer metrics come from (nil: none are reported).
func SetPeerSource(src PeerSource) {
	peers.mu.Lock()
	defer peers.mu.Unlock()
	peers.src = src
}

// DescribeWithStability implements metrics.StableCollector.
func (c *peerCollector) DescribeWithStability(ch chan<- *metrics.Desc) {
	ch <- peerSessionUp
	ch <- peerUptime
	ch <- peerPrefixSent
	ch <- bfdUp
	ch <- bfdDowns
	ch <- bfdPacketsIn
	ch <- bfdPacketsOut
}

// CollectWithStability implements metrics.StableCollector.
func (c *peerCollector) CollectWithStability(ch chan<- metrics.Metric) {
	c.mu.Lock()
	src := c.src
	c.mu.Unlock()
	if src == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), peerScrapeTimeout)
	defer cancel()
	samples, err := src(ctx)
	if err != nil {
		klog.V(2).InfoS("per-peer metrics unavailable", "err", err)
		return
	}
	now := c.now()
	for _, s := range samples {
		up, uptime := 0.0, 0.0
		if s.Up {
			up = 1
			if !s.EstablishedSince.IsZero() {
				uptime = max(now.Sub(s.EstablishedSince).Seconds(), 0)
			}
		}
		ch <- metrics.NewLazyConstMetric(peerSessionUp, metrics.GaugeValue, up, s.Name, s.Address)
		ch <- metrics.NewLazyConstMetric(peerUptime, metrics.GaugeValue, uptime, s.Name, s.Address)
		ch <- metrics.NewLazyConstMetric(peerPrefixSent, metrics.GaugeValue, float64(s.PrefixesSent), s.Name, s.Address)
		if b := s.BFD; b != nil {
			up := 0.0
			if b.Up {
				up = 1
			}
			ch <- metrics.NewLazyConstMetric(bfdUp, metrics.GaugeValue, up, s.Name, s.Address)
			ch <- metrics.NewLazyConstMetric(bfdDowns, metrics.CounterValue, float64(b.Downs), s.Name, s.Address)
			ch <- metrics.NewLazyConstMetric(bfdPacketsIn, metrics.CounterValue, float64(b.PacketsIn), s.Name, s.Address)
			ch <- metrics.NewLazyConstMetric(bfdPacketsOut, metrics.CounterValue, float64(b.PacketsOut), s.Name, s.Address)
		}
	}
}
