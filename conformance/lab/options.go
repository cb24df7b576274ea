package lab

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
)

// Names the lab gives to machine-wide things (network namespaces, the forwarder's
// port, the bpffs pin root) derive from a prefix: "bgplb", or $BGPLB_LAB_PREFIX with
// $BGPLB_LAB_FORWARD for the forwarder's address. Two labs with different prefixes can
// share a machine (a developer's lab next to a test run); processes the lab starts
// inherit the environment, so the lab kubelet names pod namespaces the same way.
var (
	Prefix         = envOr("BGPLB_LAB_PREFIX", "bgplb")
	ForwardAddr    = envOr("BGPLB_LAB_FORWARD", "127.0.0.1:16443")
	BPFPinRoot     = "/sys/fs/bpf/" + Prefix + "-lab"
	RouterNS       = Prefix + "-router"
	ClientNS       = Prefix + "-client"
	FabricClientNS = Prefix + "-fabclient"
	ControlPlaneNS = Prefix + "-cp"
	NodeNSPrefix   = Prefix + "-node"
	PodNSPrefix    = Prefix + "-pod-"
	// DefaultDir is the lab state directory: /run/<prefix>-lab.
	DefaultDir = "/run/" + Prefix + "-lab"
)

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// Defaults of the lab.
const (
	RouterASN        = 64512
	NodeASN          = 64513
	APIServerPort    = 6443
	bridgeName       = "br-fabric"
	serviceCIDRv4    = "198.18.128.0/20"
	serviceCIDRv6    = "2001:db8:5::/112"
	clusterCIDRv4    = "198.19.0.0/16"
	clusterCIDRv6    = "2001:db8:1::/48"
	markerFile       = ".bgplb-lab"
	stateFile        = "lab.json"
	maxNodes         = 200
	kubeconfigRoot   = "kubeconfig"
	kubeconfigFabric = "kubeconfig-fabric"
)

// Fixed addresses of the address plan.
var (
	RouterFabricV4 = netip.MustParseAddr("198.18.0.1")
	RouterFabricV6 = netip.MustParseAddr("2001:db8:f::1")
	ControlPlaneV4 = netip.MustParseAddr("198.18.0.254")
	ControlPlaneV6 = netip.MustParseAddr("2001:db8:f::254")
	RouterClientV4 = netip.MustParseAddr("198.51.100.1")
	RouterClientV6 = netip.MustParseAddr("2001:db8:c::1")
	ClientV4       = netip.MustParseAddr("198.51.100.10")
	ClientV6       = netip.MustParseAddr("2001:db8:c::10")
	// FabricClientV4/V6 is a client on the node fabric itself (same subnet as the
	// nodes, VIPs routed via the router): the homelab asymmetric-routing case.
	FabricClientV4   = netip.MustParseAddr("198.18.0.250")
	FabricClientV6   = netip.MustParseAddr("2001:db8:f::250")
	FabricV4         = netip.MustParsePrefix("198.18.0.0/24")
	FabricV6         = netip.MustParsePrefix("2001:db8:f::/64")
	FirstServiceIPv4 = netip.MustParseAddr("198.18.128.1")
)

// Options configure Up. The zero value of every field means its default.
type Options struct {
	// Dir is the lab state directory (default /run/bgplb-lab).
	Dir string
	// Nodes is the number of node namespaces (default 3).
	Nodes int
	// IPv6 adds the IPv6 half of the address plan (dual stack).
	IPv6 bool
	// ProxyMode is kube-proxy's mode: "nftables" (default) or "iptables".
	ProxyMode string
	// NoKubeProxy leaves kube-proxy out (the eBPF-only setup).
	NoKubeProxy bool
	// NoDaemon does not start bgplbd even when BinDir holds it.
	NoDaemon bool
	// DaemonExtraArgs are appended to bgplbd's command line on every node (for example
	// --datapath=false, so that kube-proxy serves the VIPs).
	DaemonExtraArgs []string
	// ExportPodCIDR runs bgplbd with --export-pod-cidr: each node announces its pod
	// CIDRs over BGP and the router holds no static routes to them. Pods are then
	// reachable from outside their node only while a BGPPeer for the router selects
	// the node (the conformance suite's base configuration has one).
	ExportPodCIDR bool
	// NoCNIPlugin leaves the bgplb CNI plugin out of the nodes' conflists even when
	// BinDir holds it (plain ptp + host-local).
	NoCNIPlugin bool
	// DatapathAttach is passed to bgplbd (--datapath-attach) and the CNI plugin
	// (datapathAttach): auto, tcx or tc. Default $BGPLB_DATAPATH_ATTACH, else bgplbd's
	// and the plugin's default (auto).
	DatapathAttach string
	// DatapathDelivery is passed to bgplbd (--datapath-delivery): stack or redirect.
	// Default $BGPLB_DATAPATH_DELIVERY, else bgplbd's default (stack).
	DatapathDelivery string
	// NetworkPolicy runs a NetworkPolicy enforcer (kube-network-policies, see
	// netpol.go) on every node.
	NetworkPolicy bool
	// BrokenDatapathNodes names nodes whose CNI plugin is configured with a pin
	// directory that is not on bpffs, so every attach there fails as on a node whose
	// datapath cannot work (pods must still start; the node must not announce).
	BrokenDatapathNodes []string
	// Recreate tears down an existing lab first instead of failing.
	Recreate bool
	// K8sBinDir holds kube-apiserver, kube-controller-manager, kube-scheduler,
	// kube-proxy and the CNI plugins ptp, host-local, loopback
	// (default $HOME/.cache/bgplb/bin).
	K8sBinDir string
	// BinDir holds the project's binaries: bgplb-lab (required: forwarder and lab
	// kubelet), podserver (required) and bgplbd (optional).
	BinDir string
	// Router is the lab router's BGP implementation: "frr" (default, or
	// $BGPLB_LAB_ROUTER) or "bird" (BIRD 2 running Debian's default bird.conf with the
	// snippet of `bgplbctl router-config bird` included).
	Router string
	// NodeASN is the AS the router expects from the nodes: 64513 (default, eBGP) or
	// 64512 (iBGP variant: same AS as the router).
	NodeASN uint32
	// Runtime is how nodes run pods: "lab" (default, or $BGPLB_LAB_RUNTIME: the lab
	// kubelet) or "containerd" (a real containerd and kubelet per node, bgplb installed
	// from manifests/base and its image; see runtime_containerd.go).
	Runtime string
	// ImageDir holds the OCI layouts and archives of `make image image-pause` (bgplb,
	// podserver, pause) that Runtime "containerd" imports into every node (default
	// $BGPLB_IMAGE_DIR).
	ImageDir string
	// Logf receives progress lines; nil discards them.
	Logf func(format string, args ...any) `json:"-"`
}

func (o *Options) defaults() error {
	if o.Dir == "" {
		o.Dir = DefaultDir
	}
	abs, err := filepath.Abs(o.Dir)
	if err != nil {
		return fmt.Errorf("resolve lab dir %q: %w", o.Dir, err)
	}
	o.Dir = abs
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Nodes < 1 || o.Nodes > maxNodes {
		return fmt.Errorf("--nodes %d: must be between 1 and %d", o.Nodes, maxNodes)
	}
	switch o.ProxyMode {
	case "":
		o.ProxyMode = "nftables"
	case "nftables", "iptables":
	default:
		return fmt.Errorf("--proxy-mode %q: must be nftables or iptables", o.ProxyMode)
	}
	if o.ExportPodCIDR && o.NoDaemon {
		return fmt.Errorf("--export-pod-cidr needs bgplbd to announce the pod CIDRs: drop --no-daemon")
	}
	if o.Router == "" {
		o.Router = envOr("BGPLB_LAB_ROUTER", RouterFRR)
	}
	if o.Router != RouterFRR && o.Router != RouterBIRD {
		return fmt.Errorf("--router %q: must be %s or %s", o.Router, RouterFRR, RouterBIRD)
	}
	if o.NodeASN == 0 {
		o.NodeASN = NodeASN
	}
	if o.NodeASN != NodeASN && o.NodeASN != RouterASN {
		return fmt.Errorf("--node-asn %d: must be %d (eBGP) or %d (iBGP)", o.NodeASN, NodeASN, RouterASN)
	}
	if o.K8sBinDir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return fmt.Errorf("find home dir for the k8s bin dir: %w", err)
		}
		o.K8sBinDir = filepath.Join(home, ".cache", "bgplb", "bin")
	}
	if o.BinDir == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find own executable for the bin dir: %w", err)
		}
		o.BinDir = filepath.Dir(exe)
	}
	if o.DatapathAttach == "" {
		o.DatapathAttach = os.Getenv("BGPLB_DATAPATH_ATTACH")
	}
	switch o.DatapathAttach {
	case "", "auto", "tcx", "tc":
	default:
		return fmt.Errorf("datapath attach mode %q (BGPLB_DATAPATH_ATTACH): must be auto, tcx or tc", o.DatapathAttach)
	}
	if o.Runtime == "" {
		o.Runtime = envOr("BGPLB_LAB_RUNTIME", RuntimeLab)
	}
	switch o.Runtime {
	case RuntimeLab:
	case RuntimeContainerd:
		if o.ImageDir == "" {
			o.ImageDir = os.Getenv("BGPLB_IMAGE_DIR")
		}
		if o.ImageDir == "" {
			return fmt.Errorf("--runtime containerd needs the images of `make image image-pause`: set --image-dir (or BGPLB_IMAGE_DIR)")
		}
		if o.NoKubeProxy {
			return fmt.Errorf("--runtime containerd: bgplbd reaches the API server through the kubernetes Service: keep kube-proxy")
		}
		if len(o.BrokenDatapathNodes) > 0 {
			return fmt.Errorf("--runtime containerd: broken-datapath nodes are a lab-kubelet feature")
		}
	default:
		return fmt.Errorf("--runtime %q: must be %s or %s", o.Runtime, RuntimeLab, RuntimeContainerd)
	}
	if o.DatapathDelivery == "" {
		o.DatapathDelivery = os.Getenv("BGPLB_DATAPATH_DELIVERY")
	}
	switch o.DatapathDelivery {
	case "", "stack", "redirect":
	default:
		return fmt.Errorf("datapath delivery %q (BGPLB_DATAPATH_DELIVERY): must be stack or redirect", o.DatapathDelivery)
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return nil
}

// Node describes one lab node and its slice of the address plan.
type Node struct {
	// Name is the Node object's name: node<Index>.
	Name string `json:"name"`
	// Index is n in bgplb-node<n>, 1-based.
	Index int `json:"index"`
	// Netns is the node's network namespace name.
	Netns string `json:"netns"`
	// IPs are the node's fabric addresses (IPv4 first).
	IPs []netip.Addr `json:"ips"`
	// PodCIDRs are the node's pod ranges (IPv4 first).
	PodCIDRs []netip.Prefix `json:"podCIDRs"`
	// Dir is <lab dir>/node<Index>.
	Dir string `json:"dir"`
}

// CNIConfDir, CNIBinDir, CNICacheDir and KubeletStateDir are the node's own paths.
func (n Node) CNIConfDir() string      { return filepath.Join(n.Dir, "cni", "net.d") }
func (n Node) CNIBinDir() string       { return filepath.Join(n.Dir, "cni", "bin") }
func (n Node) CNICacheDir() string     { return filepath.Join(n.Dir, "cni", "cache") }
func (n Node) IPAMDir() string         { return filepath.Join(n.Dir, "ipam") }
func (n Node) KubeletStateDir() string { return filepath.Join(n.Dir, "kubelet") }

// BPFPinDir is the node's bpffs pin directory (/sys/fs/bpf/bgplb-lab/<node>).
func (n Node) BPFPinDir() string { return filepath.Join(BPFPinRoot, n.Name) }

// DaemonSocket is the node's bgplbd unix socket path.
func (n Node) DaemonSocket() string { return filepath.Join(n.Dir, "bgplbd", "bgplbd.sock") }

// EndpointsDir is the node's durable CNI endpoint records dir.
func (n Node) EndpointsDir() string { return filepath.Join(n.Dir, "bgplbd", "endpoints") }

func makeNode(dir string, i int, ipv6 bool) Node {
	n := Node{
		Name:     fmt.Sprintf("node%d", i),
		Index:    i,
		Netns:    fmt.Sprintf("%s%d", NodeNSPrefix, i),
		IPs:      []netip.Addr{netip.AddrFrom4([4]byte{198, 18, 0, byte(10 + i)})},
		PodCIDRs: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, byte(i), 0}), 24)},
		Dir:      filepath.Join(dir, fmt.Sprintf("node%d", i)),
	}
	if ipv6 {
		n.IPs = append(n.IPs, netip.MustParseAddr(fmt.Sprintf("2001:db8:f::%d", 10+i)))
		n.PodCIDRs = append(n.PodCIDRs, netip.MustParsePrefix(fmt.Sprintf("2001:db8:1:%d::/64", i)))
	}
	return n
}
