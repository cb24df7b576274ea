package app

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/bgplb/bgplb/bpf"
	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/config"
	"github.com/bgplb/bgplb/daemon/eligibility"
)

// Default paths and addresses (each configurable by a flag).
const (
	DefaultNamespace    = "bgplb-system"
	DefaultMetricsAddr  = "127.0.0.1:9464"
	DefaultHealthAddr   = "127.0.0.1:9465"
	DefaultLeaseName    = "bgplb-ipam"
	DefaultLeaseSeconds = 15
)

// Options are the daemon's command-line flags. Use NewOptions for the defaults.
type Options struct {
	Kubeconfig         string
	NodeName           string
	ConfigFile         string
	Class              string
	DefaultClass       bool
	Socket             string
	RecordsDir         string
	BPFPinDir          string
	UplinkInterfaces   []string
	Datapath           bool
	Namespace          string
	MetricsBindAddress string
	HealthBindAddress  string
	LeaderElect        bool
	LeaseNamespace     string
	LeaseName          string
	LeaseDuration      time.Duration
	RenewDeadline      time.Duration
	RetryPeriod        time.Duration
	Workers            int
	ASN                uint32
	KubeAPIQPS         float32
	KubeAPIBurst       int
	ExportPodCIDR      bool
	Profiling          bool
	DrainDelay         time.Duration
	CNI                CNIOptions // cni.go

	// DatapathAttach is how programs are attached: auto, tcx or tc.
	DatapathAttach string
	// RegistryClientExe, when set, is the only executable allowed to register endpoints.
	RegistryClientExe string
	// StateFile is where the announced state is saved (persist.go); empty: next to the
	// records dir.
	StateFile string
	// Mode is what this process runs: ModeAll, ModeNode or ModeAllocator.
	Mode string
	// DatapathDelivery is how VIP traffic reaches local pods: stack or redirect.
	DatapathDelivery string
}

// Modes of bgplbd (--mode).
const (
	// ModeAll runs the node's work and, while holding the Lease, LB-IPAM and the
	// Announced aggregator: one DaemonSet does everything (the lab runs this).
	ModeAll = "all"
	// ModeNode runs only the node's work (speaker, datapath, registry, its BGPNodeState):
	// the DaemonSet of manifests/base, whose ServiceAccount may not write Service status.
	ModeNode = "node"
	// ModeAllocator runs only LB-IPAM and the Announced aggregator, while holding the
	// Lease: the bgplb-allocator Deployment, the only writer of Service status.
	ModeAllocator = "allocator"
)

// NewOptions returns the defaults, reading NODE_NAME and POD_NAMESPACE from the environment.
func NewOptions() *Options {
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		ns = DefaultNamespace
	}
	return &Options{
		NodeName:           os.Getenv("NODE_NAME"),
		Class:              v1alpha1.DefaultLoadBalancerClass,
		Socket:             config.DefaultSocket,
		RecordsDir:         config.DefaultRecordsDir,
		BPFPinDir:          config.DefaultBPFPinDir,
		Datapath:           true,
		Namespace:          ns,
		MetricsBindAddress: DefaultMetricsAddr,
		HealthBindAddress:  DefaultHealthAddr,
		LeaderElect:        true,
		LeaseName:          DefaultLeaseName,
		LeaseDuration:      DefaultLeaseSeconds * time.Second,
		RenewDeadline:      10 * time.Second,
		RetryPeriod:        2 * time.Second,
		Workers:            4,
		ASN:                64513,
		KubeAPIQPS:         200,
		KubeAPIBurst:       400,
		CNI:                DefaultCNIOptions(),
		Mode:               ModeAll,
	}
}

// AddFlags registers the flags on fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "Path to a kubeconfig; empty uses the in-cluster configuration.")
	fs.StringVar(&o.NodeName, "node-name", o.NodeName, "Name of the Node this daemon runs on (default $NODE_NAME).")
	fs.StringVar(&o.ConfigFile, "config", o.ConfigFile, "Path to a DaemonConfiguration file (eligibility plugins and their args); optional.")
	fs.StringVar(&o.Class, "class", o.Class, "spec.loadBalancerClass of the Services this daemon handles.")
	fs.BoolVar(&o.DefaultClass, "default-class", o.DefaultClass, "Also handle LoadBalancer Services without a loadBalancerClass.")
	fs.StringVar(&o.Socket, "socket", o.Socket, "Unix socket the CNI plugin registers endpoints on (mode 0600).")
	fs.StringVar(&o.RecordsDir, "records-dir", o.RecordsDir, "Directory of the CNI plugin's durable endpoint records.")
	fs.StringVar(&o.BPFPinDir, "bpf-pin-dir", o.BPFPinDir, "bpffs directory where the datapath maps and links are pinned.")
	fs.StringSliceVar(&o.UplinkInterfaces, "uplink-interfaces", o.UplinkInterfaces, "Interfaces VIP traffic arrives on (default: the interface holding the node's InternalIP).")
	fs.BoolVar(&o.Datapath, "datapath", o.Datapath, "Program the eBPF datapath; false leaves serving the VIPs to kube-proxy (and disables the DatapathReady plugin).")
	fs.StringVar(&o.Namespace, "namespace", o.Namespace, "Namespace of the peer password Secrets (default $POD_NAMESPACE or bgplb-system).")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", o.MetricsBindAddress, "Address of the /metrics endpoint; empty disables it.")
	fs.StringVar(&o.HealthBindAddress, "health-bind-address", o.HealthBindAddress, "Address of the /healthz and /readyz endpoints; empty disables them.")
	fs.BoolVar(&o.LeaderElect, "leader-elect", o.LeaderElect, "Run the LB-IPAM allocator only while holding the Lease; false runs it unconditionally (one daemon only!).")
	fs.StringVar(&o.LeaseNamespace, "leader-elect-namespace", o.LeaseNamespace, "Namespace of the LB-IPAM Lease (default: --namespace).")
	fs.StringVar(&o.LeaseName, "leader-elect-name", o.LeaseName, "Name of the LB-IPAM Lease.")
	fs.DurationVar(&o.LeaseDuration, "leader-elect-lease-duration", o.LeaseDuration, "Lease duration of the LB-IPAM leader election.")
	fs.DurationVar(&o.RenewDeadline, "leader-elect-renew-deadline", o.RenewDeadline, "Renew deadline of the LB-IPAM leader election.")
	fs.DurationVar(&o.RetryPeriod, "leader-elect-retry-period", o.RetryPeriod, "Retry period of the LB-IPAM leader election.")
	fs.IntVar(&o.Workers, "workers", o.Workers, "Number of Services synced concurrently.")
	fs.Float32Var(&o.KubeAPIQPS, "kube-api-qps", o.KubeAPIQPS, "Queries per second to the API server, per client (informers, LB-IPAM status writes, Announced condition writes each have one).")
	fs.IntVar(&o.KubeAPIBurst, "kube-api-burst", o.KubeAPIBurst, "Burst of queries to the API server.")
	fs.BoolVar(&o.ExportPodCIDR, "export-pod-cidr", o.ExportPodCIDR, "Also announce this node's spec.podCIDRs over BGP (routers reach pods without static routes).")
	fs.BoolVar(&o.Profiling, "profiling", o.Profiling, "Serve Go's pprof handlers under /debug/pprof/ on the metrics address.")
	o.CNI.AddFlags(fs)
	fs.Uint32Var(&o.ASN, "asn", o.ASN, "Global AS number of the BGP speaker (each BGPPeer's localASN is used on its session).")
	fs.DurationVar(&o.DrainDelay, "drain-delay", 5*time.Second, "How long routes carry the graceful-shutdown community before they are withdrawn: every withdrawal on a drained node (cordoned, or labelled node.kubernetes.io/exclude-from-external-load-balancers), and all routes on a shutdown that is not a restart (the node cordoned or annotated bgplb.io/drain, or the DaemonSet deleted). Keep it below the pod's termination grace period.")

	// Datapath attachment.
	fs.StringVar(&o.Mode, "mode", o.Mode, "What to run: all (node work, plus LB-IPAM and the Announced aggregator while holding the Lease), node (node work only) or allocator (LB-IPAM and the aggregator only, while holding the Lease; no speaker, datapath or socket).")
	fs.StringVar(&o.StateFile, "state-file", o.StateFile, "File where the announced BGP state is saved, so that a daemon restarted while the API server is unreachable keeps announcing it (default: bgplbd-state.json next to --records-dir).")
	fs.StringVar(&o.RegistryClientExe, "registry-client-exe", o.RegistryClientExe, "Accept endpoint registrations only from processes running this file (the CNI plugin as installed, e.g. /host/opt/cni/bin/bgplb; compared by inode through /proc/<pid>/exe). Needs the daemon to see the plugin's PID (hostPID); empty: any root client (docs/security.md).")
	fs.StringVar(&o.DatapathDelivery, "datapath-delivery", "stack", "How VIP traffic reaches a local pod: stack (DNAT in tc, then the node's stack routes it through netfilter FORWARD and the primary CNI, so NetworkPolicy applies) or redirect (straight into the pod with bpf_redirect_peer: BYPASSES NetworkPolicy and the node's netfilter rules).")
	fs.StringVar(&o.DatapathAttach, "datapath-attach", "auto", "How the eBPF programs are attached: auto (tcx, legacy tc where the kernel refuses tcx), tcx (Linux >= 6.6) or tc (clsact + cls_bpf). The CNI plugin's datapathAttach netconf field should match.")
}

// Config is the validated, immutable daemon configuration built by Options.Config.
type Config struct {
	Kubeconfig       string
	NodeName         string
	ConfigFile       string
	Class            string
	DefaultClass     bool
	Socket           string
	RecordsDir       string
	BPFPinDir        string
	UplinkInterfaces []string // empty: derive from the node's InternalIP at start
	Datapath         bool
	Namespace        string
	MetricsAddr      string
	HealthAddr       string
	LeaderElect      bool
	LeaseNamespace   string
	LeaseName        string
	LeaseDuration    time.Duration
	RenewDeadline    time.Duration
	RetryPeriod      time.Duration
	Workers          int
	ASN              uint32
	KubeAPIQPS       float32
	KubeAPIBurst     int
	ExportPodCIDR    bool
	Profiling        bool
	RouterID         netip.Addr // invalid: the node's IPv4 InternalIP
	ListenPort       int32
	Profile          eligibility.Profile
	Version          string
	CNI              CNIConfig // cni.go
	DatapathAttach   bpf.AttachMode
	// DrainDelay is how long a node that shuts down for good announces with the
	// graceful-shutdown community before it withdraws (drain.go).
	DrainDelay time.Duration
	// RegistryClientExe: see Options.RegistryClientExe.
	RegistryClientExe string
	// StateFile: see Options.StateFile (never empty).
	StateFile string
	// Mode: ModeAll, ModeNode or ModeAllocator.
	Mode             string
	DatapathDelivery bpf.Delivery
}

// Config validates the options (and loads the --config file) and returns the immutable
// Config. Every error names the flag. changed reports whether a flag was set explicitly:
// explicit flags win over the file, the file wins over flag defaults; nil means "no flag
// was set explicitly".
func (o *Options) Config(version string, changed func(flag string) bool) (Config, error) {
	if changed == nil {
		changed = func(string) bool { return false }
	}
	if o.DrainDelay < 0 || o.DrainDelay > 5*time.Minute {
		return Config{}, fmt.Errorf("--drain-delay %s must be 0-5m", o.DrainDelay)
	}
	dc := config.Default()
	if o.ConfigFile != "" {
		var err error
		if dc, err = config.Load(o.ConfigFile); err != nil {
			return Config{}, fmt.Errorf("--config: %w", err)
		}
		if !changed("class") {
			o.Class = dc.Class
		}
		if !changed("default-class") {
			o.DefaultClass = dc.DefaultClass
		}
		if !changed("socket") {
			o.Socket = dc.Paths.Socket
		}
		if !changed("records-dir") {
			o.RecordsDir = dc.Paths.RecordsDir
		}
		if !changed("bpf-pin-dir") {
			o.BPFPinDir = dc.Paths.BPFPinDir
		}
		if !changed("asn") {
			o.ASN = dc.BGP.ASN
		}
	}
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	if o.NodeName == "" {
		bad("--node-name: required (or set NODE_NAME)")
	}
	if o.Class == "" || strings.ContainsAny(o.Class, " \t") {
		bad("--class: %q is not a valid loadBalancerClass", o.Class)
	}
	for name, p := range map[string]string{"--socket": o.Socket, "--records-dir": o.RecordsDir, "--bpf-pin-dir": o.BPFPinDir} {
		if p == "" || !strings.HasPrefix(p, "/") {
			bad("%s: %q must be an absolute path", name, p)
		}
	}
	for _, ifn := range o.UplinkInterfaces {
		if ifn == "" || len(ifn) > 15 || strings.ContainsAny(ifn, "/ ") {
			bad("--uplink-interfaces: %q is not an interface name", ifn)
		}
	}
	if o.Namespace == "" {
		bad("--namespace: required")
	}
	if o.Mode != ModeAll && o.Mode != ModeNode && o.Mode != ModeAllocator {
		bad("--mode: %q is not all, node or allocator", o.Mode)
	}
	for name, a := range map[string]string{"--metrics-bind-address": o.MetricsBindAddress, "--health-bind-address": o.HealthBindAddress} {
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			bad("%s: %v", name, err)
		}
	}
	if o.LeaderElect && !(o.RetryPeriod > 0 && o.RenewDeadline > o.RetryPeriod && o.LeaseDuration > o.RenewDeadline) {
		bad("--leader-elect-*: want lease duration > renew deadline > retry period > 0")
	}
	if o.Workers < 1 {
		bad("--workers: must be at least 1")
	}
	if o.KubeAPIQPS <= 0 || o.KubeAPIBurst < 1 {
		bad("--kube-api-qps/--kube-api-burst: must be positive")
	}
	if o.ASN == 0 {
		bad("--asn: must be 1-4294967295")
	}
	attachMode, err := bpf.ParseAttachMode(o.DatapathAttach)
	if err != nil {
		bad("--datapath-attach: %v", err)
	}
	delivery, err := bpf.ParseDelivery(o.DatapathDelivery)
	if err != nil {
		bad("--datapath-delivery: %v", err)
	}
	cni, err := o.CNI.config(o.Datapath, o.Socket, o.RecordsDir, o.BPFPinDir, o.DatapathAttach)
	if err != nil {
		bad("%v", err)
	}
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("invalid options: %s", strings.Join(errs, "; "))
	}
	profile, err := buildProfile(dc, o.Class, o.DefaultClass, o.Datapath)
	if err != nil {
		return Config{}, err
	}
	stateFile := o.StateFile
	if stateFile == "" {
		stateFile = filepath.Join(filepath.Dir(filepath.Clean(o.RecordsDir)), "bgplbd-state.json")
	}
	leaseNS := o.LeaseNamespace
	if leaseNS == "" {
		leaseNS = o.Namespace
	}
	return Config{
		Kubeconfig: o.Kubeconfig, NodeName: o.NodeName, ConfigFile: o.ConfigFile, Class: o.Class,
		DefaultClass: o.DefaultClass, Socket: o.Socket, RecordsDir: o.RecordsDir, BPFPinDir: o.BPFPinDir,
		UplinkInterfaces: append([]string(nil), o.UplinkInterfaces...), Datapath: o.Datapath,
		Namespace: o.Namespace, MetricsAddr: o.MetricsBindAddress, HealthAddr: o.HealthBindAddress,
		LeaderElect: o.LeaderElect, LeaseNamespace: leaseNS, LeaseName: o.LeaseName,
		LeaseDuration: o.LeaseDuration, RenewDeadline: o.RenewDeadline, RetryPeriod: o.RetryPeriod,
		Workers: o.Workers, ASN: o.ASN, KubeAPIQPS: o.KubeAPIQPS, KubeAPIBurst: o.KubeAPIBurst,
		ExportPodCIDR: o.ExportPodCIDR, Profiling: o.Profiling, RouterID: dc.BGP.RouterID, ListenPort: dc.BGP.ListenPort,
		Profile: profile, Version: version, CNI: cni, DatapathAttach: attachMode, DrainDelay: o.DrainDelay,
		RegistryClientExe: o.RegistryClientExe, StateFile: stateFile, Mode: o.Mode,
		DatapathDelivery: delivery,
	}, nil
}

// interfaceHolding returns the name of the interface that has ip assigned.
func interfaceHolding(ip netip.Addr) (string, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return "", fmt.Errorf("list interfaces: %w", err)
	}
	for _, ifc := range ifaces {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if got, ok := netip.AddrFromSlice(n.IP); ok && got.Unmap() == ip {
					return ifc.Name, nil
				}
			}
		}
	}
	return "", fmt.Errorf("no interface holds %s", ip)
}
