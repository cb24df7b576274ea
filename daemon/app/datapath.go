package app

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/bgplb/bgplb/bpf"
	"github.com/bgplb/bgplb/daemon/announce"
	"github.com/bgplb/bgplb/daemon/datapath"
	"github.com/bgplb/bgplb/daemon/metrics"
	"github.com/bgplb/bgplb/daemon/registry"
)

// dpHandle is the datapath as the app sees it; the zero value is "disabled".
type dpHandle struct {
	m *datapath.Manager
}

func (d dpHandle) announceDatapath() announce.Datapath {
	if d.m == nil {
		return nil // a nil *Manager in the interface would not be nil
	}
	return d.m
}

func (d dpHandle) prune(ctx context.Context) error {
	if d.m == nil {
		return nil
	}
	return d.m.Prune(ctx)
}

// startDatapath opens the pinned maps, adopts their entries and attaches the uplink
// program. With --datapath=false it returns the disabled handle.
func startDatapath(ctx context.Context, cfg Config, kube kubernetes.Interface, node *corev1.Node, reg *registry.Registry) (dpHandle, error) {
	logger := klog.FromContext(ctx)
	if !cfg.Datapath {
		logger.Info("eBPF datapath disabled: kube-proxy (or the CNI) serves the VIPs")
		return dpHandle{}, nil
	}
	uplinks := cfg.UplinkInterfaces
	if len(uplinks) == 0 {
		ip, ok := nodeIP(node, true)
		if !ok {
			ip, _ = nodeIP(node, false)
		}
		name, err := interfaceHolding(ip)
		if err != nil {
			return dpHandle{}, fmt.Errorf("find the uplink interface (set --uplink-interfaces): %w", err)
		}
		uplinks = []string{name}
	}
	// The cluster's Maglev hash seed (ConfigMap bgplb-datapath in --namespace), before
	// any program is loaded.
	seed, err := datapath.ClusterHashSeed(ctx, kube, cfg.Namespace)
	if err != nil {
		return dpHandle{}, err
	}
	bpf.SetHashSeed(seed)
	bpf.SetDelivery(cfg.DatapathDelivery)
	maps, err := datapath.OpenMaps(cfg.BPFPinDir)
	if err != nil {
		return dpHandle{}, err
	}
	m, err := datapath.New(maps, func(ip netip.Addr) (int, bool) {
		ep, ok := reg.ByIP(ip)
		if !ok || ep.HostIfIndex <= 0 {
			return 0, false
		}
		return ep.HostIfIndex, true
	})
	if err != nil {
		return dpHandle{}, fmt.Errorf("adopt datapath maps: %w", err)
	}
	if n, err := datapath.UpdatePrograms(cfg.BPFPinDir); err != nil {
		logger.Info("updating the programs of pinned links failed; they keep the old ones", "err", err)
	} else if n > 0 {
		logger.Info("programs of pinned links updated to this build", "links", n)
	}
	if err := datapath.AttachUplinks(ctx, cfg.BPFPinDir, uplinks, cfg.DatapathAttach); err != nil {
		return dpHandle{}, err
	}
	go datapath.ReportEvictions(ctx, maps, 30*time.Second) // ends with ctx
	metrics.SetDatapathSource(datapathCounters(maps, m))   // observe.go
	logger.Info("eBPF datapath ready", "pinDir", cfg.BPFPinDir, "uplinks", uplinks, "delivery", cfg.DatapathDelivery)
	return dpHandle{m: m}, nil
}
