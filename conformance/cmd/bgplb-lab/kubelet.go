package main

import (
	"flag"
	"fmt"
	"net/netip"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	"github.com/bgplb/bgplb/conformance/lab/kubelet"
)

func newKubeletCmd() *cobra.Command {
	var (
		cfg                kubelet.Config
		nodeIP, nodeIPv6   string
		podCIDR, podCIDRv6 string
	)
	cmd := &cobra.Command{
		Use:    "kubelet",
		Short:  "Run the lab kubelet of one node (started by up inside the node's namespace)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, s := range []string{nodeIP, nodeIPv6} {
				if s == "" {
					continue
				}
				a, err := netip.ParseAddr(s)
				if err != nil {
					return fmt.Errorf("parse node IP %q: %w", s, err)
				}
				cfg.NodeIPs = append(cfg.NodeIPs, a)
			}
			for _, s := range []string{podCIDR, podCIDRv6} {
				if s == "" {
					continue
				}
				p, err := netip.ParsePrefix(s)
				if err != nil {
					return fmt.Errorf("parse pod CIDR %q: %w", s, err)
				}
				cfg.PodCIDRs = append(cfg.PodCIDRs, p)
			}
			return kubelet.Run(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.NodeName, "node", "", "Node name")
	f.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "kubeconfig (reachable from inside the node namespace)")
	f.StringVar(&nodeIP, "node-ip", "", "node InternalIP (IPv4)")
	f.StringVar(&nodeIPv6, "node-ipv6", "", "node InternalIP (IPv6)")
	f.StringVar(&podCIDR, "pod-cidr", "", "pod CIDR (IPv4)")
	f.StringVar(&podCIDRv6, "pod-cidr-v6", "", "pod CIDR (IPv6)")
	f.StringVar(&cfg.CNIConfDir, "cni-conf-dir", "", "CNI conflist dir")
	f.StringVar(&cfg.CNIBinDir, "cni-bin-dir", "", "CNI plugin dir")
	f.StringVar(&cfg.CNICacheDir, "cni-cache-dir", "", "libcni cache dir")
	f.StringVar(&cfg.StateDir, "state-dir", "", "kubelet state dir (pid files of pod processes)")
	f.StringVar(&cfg.PodserverPath, "podserver", "", "path of the podserver binary")
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags) // -v and friends for the kubelet's klog output
	f.AddGoFlagSet(klogFlags)
	for _, req := range []string{"node", "kubeconfig", "node-ip", "pod-cidr", "cni-conf-dir", "cni-bin-dir",
		"cni-cache-dir", "state-dir", "podserver"} {
		_ = cmd.MarkFlagRequired(req) // only fails for unknown flag names
	}
	return cmd
}
