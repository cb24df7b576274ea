package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/daemon/pools"
)

// routerParams are the inputs of the generated router configurations.
type routerParams struct {
	RouterASN uint32
	NodeASN   uint32
	RouterID  string
	NodeCIDRs []netip.Prefix // listen ranges (dynamic neighbours)
	Pools     []netip.Prefix // VIP pools: host routes inside them are accepted from the nodes
	PodCIDRs  []netip.Prefix // pod CIDRs the nodes export (bgplbd --export-pod-cidr): accepted exactly
	Nodes     []netip.Addr   // node addresses (static neighbours, OPNsense)
	// TTLSecurityHops turns on GTSM (RFC 5082) towards the nodes when > 0: the BGPPeers'
	// spec.ttlSecurityHops must match.
	TTLSecurityHops uint8
	// Standalone makes the BIRD output a whole bird.conf (device and kernel protocols)
	// instead of a snippet to include next to an existing configuration.
	Standalone bool
	// BFD, when set, makes the router run BFD with the nodes (BGPPeer spec.bfd).
	BFD *routerBFD
	// DualFamily: the nodes' sessions carry both address families (BGPPeers with
	// spec.addressFamilies [IPv4, IPv6]), so every session accepts the routes of both.
	DualFamily bool
}

// routerBFD are the router's BFD timers; they should match the BGPPeers' spec.bfd.
type routerBFD struct {
	IntervalMs int // receive and transmit interval
	Multiplier int
}

// routerFlavours are the outputs of router-config, in the order --help lists them.
var routerFlavours = []string{"frr", "bird", "opnsense", "vyos", "routeros"}

func newRouterConfigCmd(g *globals) *cobra.Command {
	var (
		routerASN, nodeASN uint32
		routerID           string
		nodeCIDRs, pools   []string
		podCIDRs           []string
		withPodCIDRs       bool
		standalone         bool
		bfd                bool
		dualFamily         bool
		bfdInterval        int
		bfdMultiplier      int
		ttlHops            uint
	)
	cmd := &cobra.Command{
		Use:   "router-config " + strings.Join(routerFlavours, "|"),
		Short: "Print a router configuration peering with every node (listen range, multipath, import only the pools)",
		Long: `Print the router side of bgplb: dynamic neighbours for the node subnets (or one
neighbour per node where the router has no listen range), multipath over the nodes,
an import filter that accepts only host routes inside the VIP pools (and the nodes' pod
CIDRs with --pod-cidr or --with-pod-cidrs, for clusters running bgplbd
--export-pod-cidr), and nothing exported to the nodes.

frr and vyos print configuration (vtysh / VyOS "set" commands), routeros prints
MikroTik RouterOS 7 commands, opnsense the steps in its GUI (os-frr). bird prints a
snippet to include from an existing bird.conf (Debian's default one included); with
--standalone it prints a whole bird.conf.`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: routerFlavours,
		RunE: func(cmd *cobra.Command, args []string) error {
			if ttlHops > 254 {
				return fmt.Errorf("--ttl-security-hops %d: must be 0 (off) or 1-254", ttlHops)
			}
			p := routerParams{RouterASN: routerASN, NodeASN: nodeASN, RouterID: routerID, Standalone: standalone,
				TTLSecurityHops: uint8(ttlHops), DualFamily: dualFamily}
			if bfd {
				if bfdInterval < 10 || bfdInterval > 60000 || bfdMultiplier < 1 || bfdMultiplier > 255 {
					return fmt.Errorf("--bfd-interval-ms must be 10-60000 and --bfd-multiplier 1-255")
				}
				p.BFD = &routerBFD{IntervalMs: bfdInterval, Multiplier: bfdMultiplier}
			}
			var err error
			if p.PodCIDRs, err = parsePrefixes(podCIDRs); err != nil {
				return fmt.Errorf("--pod-cidr: %w", err)
			}
			if p.NodeCIDRs, err = parsePrefixes(nodeCIDRs); err != nil {
				return fmt.Errorf("--node-cidr: %w", err)
			}
			if p.Pools, err = parsePrefixes(pools); err != nil {
				return fmt.Errorf("--pool: %w", err)
			}
			if len(p.NodeCIDRs) == 0 || len(p.Pools) == 0 || (withPodCIDRs && len(p.PodCIDRs) == 0) {
				ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
				defer cancel()
				if err := p.fromCluster(ctx, g, withPodCIDRs); err != nil {
					return fmt.Errorf("derive node CIDRs and pools from the cluster (or pass --node-cidr and --pool): %w", err)
				}
			}
			if len(p.NodeCIDRs) == 0 {
				return fmt.Errorf("no node CIDR: pass --node-cidr")
			}
			if len(p.Pools) == 0 {
				return fmt.Errorf("no LoadBalancerIPPool: pass --pool")
			}
			return writeRouterConfig(cmd.OutOrStdout(), args[0], p)
		},
	}
	f := cmd.Flags()
	f.Uint32Var(&routerASN, "router-asn", 64512, "AS number of the router.")
	f.Uint32Var(&nodeASN, "node-asn", 64513, "AS number of the nodes (BGPPeer localASN).")
	f.StringVar(&routerID, "router-id", "", "Router ID to set (optional).")
	f.StringSliceVar(&nodeCIDRs, "node-cidr", nil, "Subnet(s) of the nodes' addresses (default: derived from the Nodes' InternalIPs as /24 and /64).")
	f.StringSliceVar(&pools, "pool", nil, "VIP pool prefix(es) to accept (default: the blocks of every LoadBalancerIPPool).")
	f.StringSliceVar(&podCIDRs, "pod-cidr", nil, "Pod CIDR(s) the nodes export over BGP (bgplbd --export-pod-cidr), accepted exactly.")
	f.BoolVar(&withPodCIDRs, "with-pod-cidrs", false, "Accept every Node's spec.podCIDRs (for clusters running bgplbd --export-pod-cidr).")
	f.UintVar(&ttlHops, "ttl-security-hops", 0, "GTSM (RFC 5082) towards the nodes: accept their packets only from this many hops (1: directly connected); match the BGPPeers' spec.ttlSecurityHops. 0: off.")
	f.BoolVar(&standalone, "standalone", false, "bird: print a whole bird.conf (device and kernel protocols) instead of a snippet to include.")
	f.BoolVar(&dualFamily, "dual-family", false, "The BGPPeers carry both address families on one session (spec.addressFamilies: [IPv4, IPv6]): each session accepts IPv4 and IPv6 routes (FRR activates both families on the peer group either way).")
	f.BoolVar(&bfd, "bfd", false, "Run BFD with the nodes (for BGPPeers with spec.bfd): a lost node is withdrawn within interval x multiplier.")
	f.IntVar(&bfdInterval, "bfd-interval-ms", 300, "BFD receive and transmit interval in ms (the BGPPeers' minRxMs/minTxMs).")
	f.IntVar(&bfdMultiplier, "bfd-multiplier", 3, "BFD detection multiplier (the BGPPeers' multiplier).")
	return cmd
}

func parsePrefixes(ss []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range ss {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, err
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// fromCluster fills NodeCIDRs, Nodes and Pools from the API server where not given,
// and PodCIDRs from the Nodes' spec.podCIDRs when podCIDRs is set.
func (p *routerParams) fromCluster(ctx context.Context, g *globals, podCIDRs bool) error {
	kube, crd, err := g.clients()
	if err != nil {
		return err
	}
	nodes, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	var cidrs []netip.Prefix
	wantPods := podCIDRs && len(p.PodCIDRs) == 0
	for _, n := range nodes.Items {
		for _, c := range n.Spec.PodCIDRs {
			if pr, err := netip.ParsePrefix(c); err == nil && wantPods && !slices.Contains(p.PodCIDRs, pr.Masked()) {
				p.PodCIDRs = append(p.PodCIDRs, pr.Masked())
			}
		}
		for _, a := range n.Status.Addresses {
			if a.Type != corev1.NodeInternalIP {
				continue
			}
			ip, err := netip.ParseAddr(a.Address)
			if err != nil {
				continue
			}
			ip = ip.Unmap()
			p.Nodes = append(p.Nodes, ip)
			bits := 24
			if ip.Is6() {
				bits = 64
			}
			pr, _ := ip.Prefix(bits)
			if !slices.Contains(cidrs, pr) {
				cidrs = append(cidrs, pr)
			}
		}
	}
	if len(p.NodeCIDRs) == 0 {
		p.NodeCIDRs = cidrs
	}
	if len(p.Pools) == 0 {
		list, err := crd.BgplbV1alpha1().LoadBalancerIPPools().List(ctx, metav1.ListOptions{})
		if err != nil {
			return fmt.Errorf("list loadbalancerippools: %w", err)
		}
		for i := range list.Items {
			if list.Items[i].Spec.Disabled {
				continue
			}
			for _, b := range list.Items[i].Spec.Blocks {
				ps, err := pools.BlockPrefixes(b)
				if err == nil {
					p.Pools = append(p.Pools, ps...)
				}
			}
		}
	}
	return nil
}

func split(ps []netip.Prefix, v4 bool) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		if p.Addr().Is4() == v4 {
			out = append(out, p)
		}
	}
	return out
}

func writeRouterConfig(out io.Writer, flavour string, p routerParams) error {
	switch flavour {
	case "frr":
		writeFRR(out, p)
	case "bird":
		writeBIRD(out, p)
	case "opnsense":
		writeOPNsense(out, p)
	case "vyos":
		writeVyOS(out, p)
	case "routeros":
		writeRouterOS(out, p)
	default:
		return fmt.Errorf("unknown router %q: want one of %s", flavour, strings.Join(routerFlavours, ", "))
	}
	return nil
}

// family is one address family of the generated configurations.
type family struct {
	v4       bool
	name     string // ipv4 | ipv6
	suffix   string // V4 | V6
	hostBits int
}

var families = []family{{true, "ipv4", "V4", 32}, {false, "ipv6", "V6", 128}}

// accepted reports whether the router accepts anything of family f from the nodes.
func (p routerParams) accepted(f family) bool {
	return len(split(p.Pools, f.v4)) > 0 || len(split(p.PodCIDRs, f.v4)) > 0
}

func prefixesString(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}
