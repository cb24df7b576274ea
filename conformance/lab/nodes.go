package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// CNINetworkName is the name of the lab's conflist ("bgplb-lab").
const CNINetworkName = "bgplb-lab"

// CNIConflistFile is the conflist's file name inside a node's CNI conf dir.
const CNIConflistFile = "10-bgplb-lab.conflist"

// cniPlugins are copied from the k8s bin dir into each node's CNI bin dir.
var cniPlugins = []string{"ptp", "host-local", "loopback"}

// prepareNodeDirs writes the node's CNI conflist and CNI bin dir.
func (l *Lab) prepareNodeDirs(n Node) error {
	for _, d := range []string{n.CNIConfDir(), n.CNIBinDir(), n.CNICacheDir(), n.IPAMDir(), n.KubeletStateDir(),
		filepath.Dir(n.DaemonSocket()), n.EndpointsDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	ranges := [][]map[string]string{{{"subnet": n.PodCIDRs[0].String()}}}
	routes := []map[string]string{{"dst": "0.0.0.0/0"}}
	if len(n.PodCIDRs) > 1 {
		ranges = append(ranges, []map[string]string{{"subnet": n.PodCIDRs[1].String()}})
		routes = append(routes, map[string]string{"dst": "::/0"})
	}
	conflist := map[string]any{
		"cniVersion": "1.0.0",
		"name":       CNINetworkName,
		"plugins": []any{
			map[string]any{
				"type":   "ptp",
				"mtu":    1500,
				"ipMasq": false,
				"ipam": map[string]any{
					"type":    "host-local",
					"dataDir": n.IPAMDir(),
					"ranges":  ranges,
					"routes":  routes,
				},
			},
		},
	}
	if l.chainsPlugin() {
		// bgplb is chained after the primary CNI, as the DaemonSet's install-cni
		// init container does on a real node, with this node's own paths.
		bgplb := map[string]any{
			"type":         "bgplb",
			"daemonSocket": n.DaemonSocket(),
			"recordsDir":   n.EndpointsDir(),
			"bpfPinDir":    n.BPFPinDir(),
			"logFile":      l.cniLogFile(n),
		}
		if l.Opts.DatapathAttach != "" {
			bgplb["datapathAttach"] = l.Opts.DatapathAttach
		}
		if slices.Contains(l.Opts.BrokenDatapathNodes, n.Name) {
			// Not on bpffs: loading the programs fails, as on a node without a usable datapath.
			bgplb["bpfPinDir"] = filepath.Join(n.Dir, "not-bpffs")
		}
		conflist["plugins"] = append(conflist["plugins"].([]any), bgplb)
	}
	data, err := json.MarshalIndent(conflist, "", "  ")
	if err != nil {
		return fmt.Errorf("marshal conflist of %s: %w", n.Name, err)
	}
	if err := os.WriteFile(filepath.Join(n.CNIConfDir(), CNIConflistFile), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write conflist of %s: %w", n.Name, err)
	}
	for _, p := range cniPlugins {
		if err := os.Symlink(l.k8sBin(p), filepath.Join(n.CNIBinDir(), p)); err != nil {
			return fmt.Errorf("link CNI plugin %s for %s: %w", p, n.Name, err)
		}
	}
	if l.chainsPlugin() {
		if err := os.Symlink(filepath.Join(l.Opts.BinDir, "bgplb"), filepath.Join(n.CNIBinDir(), "bgplb")); err != nil {
			return fmt.Errorf("link CNI plugin bgplb for %s: %w", n.Name, err)
		}
	}
	return nil
}

// startsDaemon reports whether Up starts bgplbd on the nodes.
func (l *Lab) startsDaemon() bool {
	return !l.Opts.NoDaemon && executable(filepath.Join(l.Opts.BinDir, "bgplbd"))
}

// chainsPlugin reports whether the nodes' conflists chain the bgplb CNI plugin.
func (l *Lab) chainsPlugin() bool {
	return !l.Opts.NoCNIPlugin && executable(filepath.Join(l.Opts.BinDir, "bgplb"))
}

// startNode creates the node namespace and starts its processes.
func (l *Lab) startNode(ctx context.Context, n Node) error {
	v6 := ""
	if len(n.IPs) > 1 {
		v6 = n.IPs[1].String()
	}
	if err := attachToFabric(ctx, n.Netns, "veth-"+n.Name, n.IPs[0].String(), v6, true); err != nil {
		return err
	}
	if !l.Opts.ExportPodCIDR {
		if err := podRoutes(ctx, n); err != nil {
			return err
		}
	}
	if l.Opts.Runtime == RuntimeContainerd {
		return l.startContainerdNode(ctx, n)
	}
	if err := l.prepareNodeDirs(n); err != nil {
		return err
	}
	kc := filepath.Join(l.Dir, kubeconfigFabric)
	args := []string{l.labBinary(), "kubelet",
		"--node", n.Name,
		"--kubeconfig", kc,
		"--node-ip", n.IPs[0].String(),
		"--pod-cidr", n.PodCIDRs[0].String(),
		"--cni-conf-dir", n.CNIConfDir(),
		"--cni-bin-dir", n.CNIBinDir(),
		"--cni-cache-dir", n.CNICacheDir(),
		"--state-dir", n.KubeletStateDir(),
		"--podserver", filepath.Join(l.Opts.BinDir, "podserver"),
	}
	if len(n.IPs) > 1 {
		args = append(args, "--node-ipv6", n.IPs[1].String(), "--pod-cidr-v6", n.PodCIDRs[1].String())
	}
	if _, err := startDetached(l.Dir, n.Name+"-kubelet", n.Netns, args, nil); err != nil {
		return err
	}
	if err := l.startKubeProxy(n); err != nil {
		return err
	}
	if !l.Opts.NoDaemon {
		bin := filepath.Join(l.Opts.BinDir, "bgplbd")
		if _, err := os.Stat(bin); err != nil {
			l.Opts.Logf("%s: no bgplbd at %s, not starting the daemon", n.Name, bin)
		} else if _, err := startDetached(l.Dir, n.Name+"-bgplbd", n.Netns, append([]string{bin}, l.daemonArgs(n)...), DaemonEnv); err != nil {
			return err
		}
	}
	return nil
}

// startKubeProxy starts kube-proxy in node n's network namespace unless NoKubeProxy.
func (l *Lab) startKubeProxy(n Node) error {
	kc := filepath.Join(l.Dir, kubeconfigFabric)
	if !l.Opts.NoKubeProxy {
		if _, err := startDetached(l.Dir, n.Name+"-kube-proxy", n.Netns, []string{
			l.k8sBin("kube-proxy"),
			"--kubeconfig", kc,
			"--proxy-mode", l.Opts.ProxyMode,
			"--hostname-override", n.Name,
			"--cluster-cidr", l.clusterCIDRs(),
			"--conntrack-max-per-core", "0",
			"--metrics-bind-address", "127.0.0.1:10249",
			"--healthz-bind-address", "127.0.0.1:10256",
			"--v=1",
		}, nil); err != nil {
			return err
		}
	}
	return nil
}

// DaemonEnv is bgplbd's environment beyond the lab's own, as the DaemonSet in
// manifests/base sets it (keep the two in step: the scale benchmark measures this one).
var DaemonEnv = []string{"GOGC=50", "GOMEMLIMIT=96MiB"}

// DaemonNamespace is where bgplbd keeps its Lease and reads peer password Secrets;
// Up creates it when it starts bgplbd.
const DaemonNamespace = "bgplb-system"

// daemonArgs is THE place that defines how the lab starts bgplbd on a node
// (everything after the binary path). Keep it in step with bgplbd's flags
// (daemon/app/options.go); every per-node path is the node's own.
func (l *Lab) daemonArgs(n Node) []string {
	args := []string{
		"--kubeconfig", filepath.Join(l.Dir, kubeconfigFabric),
		"--node-name", n.Name,
		"--socket", n.DaemonSocket(),
		"--records-dir", n.EndpointsDir(),
		"--bpf-pin-dir", n.BPFPinDir(),
		"--uplink-interfaces", "eth0",
		"--namespace", DaemonNamespace,
		"--v=2",
	}
	if l.Opts.ExportPodCIDR {
		args = append(args, "--export-pod-cidr")
	}
	if l.Opts.DatapathAttach != "" {
		args = append(args, "--datapath-attach", l.Opts.DatapathAttach)
	}
	if l.Opts.DatapathDelivery != "" {
		args = append(args, "--datapath-delivery", l.Opts.DatapathDelivery)
	}
	// A node whose datapath is broken on purpose keeps the lab's entry (its pin dir is
	// not on bpffs): bgplbd would chain its own, working one.
	if l.chainsPlugin() && !slices.Contains(l.Opts.BrokenDatapathNodes, n.Name) {
		// bgplbd keeps the plugin chained as on a real node (the lab chains it first,
		// above, so that no pod misses it): it re-chains when the conflist is rewritten
		// and, with --datapath=false in DaemonExtraArgs, unchains it. Its entry must
		// equal prepareNodeDirs' one, or the two would rewrite each other's.
		logFile, _ := json.Marshal(l.cniLogFile(n)) // a string always encodes
		args = append(args,
			"--cni-conf-dir", n.CNIConfDir(),
			"--cni-bin-dir", n.CNIBinDir(),
			"--cni-plugin-binary", filepath.Join(l.Opts.BinDir, "bgplb"),
			"--cni-plugin-conf", `{"logFile":`+string(logFile)+`}`)
	}
	return append(args, l.Opts.DaemonExtraArgs...)
}

// cniLogFile is where the node's bgplb CNI plugin logs.
func (l *Lab) cniLogFile(n Node) string {
	return filepath.Join(l.Dir, "logs", n.Name+"-cni.log")
}

// waitNodesReady waits until every lab node's Node object reports Ready.
func (l *Lab) waitNodesReady(ctx context.Context, cs kubernetes.Interface, timeout time.Duration) error {
	var notReady []string
	err := poll(ctx, timeout, 250*time.Millisecond, func(ctx context.Context) (bool, error) {
		notReady = notReady[:0]
		for _, n := range l.Nodes {
			node, err := cs.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
			if err != nil || !NodeReady(node) {
				notReady = append(notReady, n.Name)
			}
		}
		return len(notReady) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("wait for nodes %v to be Ready (see %s): %w", notReady,
			filepath.Join(l.Dir, "logs", "node*-kubelet.log"), err)
	}
	return nil
}

// NodeReady reports whether the Node's Ready condition is True.
func NodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
