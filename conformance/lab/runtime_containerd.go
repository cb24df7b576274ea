package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Runtimes of the lab's nodes (Options.Runtime).
const (
	// RuntimeLab runs the lab kubelet: pods are podserver processes in network
	// namespaces set up through libcni (fast; the default).
	RuntimeLab = "lab"
	// RuntimeContainerd runs a real containerd and a real kubelet per node, and bgplb
	// installed from its manifests and image (see runtime_containerd.go).
	RuntimeContainerd = "containerd"
)

// A real node (RuntimeContainerd) is a network namespace plus a private mount and UTS
// namespace held by one process (the node's "holder", nodeN-holder.pid), in which
// containerd and the kubelet run as they would on a machine of their own:
//
//   - hostname nodeN (hostNetwork pods see it);
//   - the node's own directories bind-mounted on /var/lib/kubelet, /var/lib/cni,
//     /var/lib/containerd, /run/containerd, /var/log, /etc/cni/net.d, /opt/cni/bin,
//     /run/bgplb and /var/lib/bgplb (the DaemonSet's hostPaths), and a tmpfs on
//     /run/netns (containerd's pod namespaces);
//   - /sys/fs/bpf is the node's pin dir of the lab's bpffs (BPFPinRoot/nodeN) bound
//     there and made a shared mount (the DaemonSet mounts it Bidirectional), so pins
//     stay visible from the root namespace and go with BPFPinRoot;
//   - the sysctls the kubelet insists on (kernelTunables) are files bound over their
//     /proc/sys entries: the kubelet sees its values and the host keeps its own.
//
// Every process of a node — the holder, containerd, its shims, the kubelet and every
// container — lives in a cgroup named after the node (nodeCgroups), in every
// cgroup v1 hierarchy: Down kills what is in them and removes them.

// kernelTunables are the sysctls the kubelet sets when they differ
// (pkg/kubelet/cm/container_manager_linux.go setupKernelTunables).
var kernelTunables = map[string]string{
	"vm/overcommit_memory":      "1",
	"vm/panic_on_oom":           "0",
	"kernel/panic":              "10",
	"kernel/panic_on_oops":      "1",
	"kernel/keys/root_maxkeys":  "1000000",
	"kernel/keys/root_maxbytes": "25000000",
}

// hostDirs are the paths a real node sees as its own: path in the node's mount
// namespace → directory below the node dir.
func (n Node) hostDirs() map[string]string {
	h := func(p string) string { return filepath.Join(n.Dir, "host", p) }
	return map[string]string{
		"/var/lib/kubelet":    h("var-lib-kubelet"),
		"/var/lib/cni":        h("var-lib-cni"),
		"/var/lib/containerd": h("var-lib-containerd"),
		"/run/containerd":     h("run-containerd"),
		"/var/log":            h("var-log"),
		"/etc/cni/net.d":      n.CNIConfDir(),
		"/opt/cni/bin":        n.CNIBinDir(),
		"/run/bgplb":          filepath.Dir(n.DaemonSocket()),
		"/var/lib/bgplb":      h("var-lib-bgplb"),
	}
}

// ContainerdSocket is the node's containerd socket as seen from the root namespace.
func (n Node) ContainerdSocket() string {
	return filepath.Join(n.Dir, "host", "run-containerd", "containerd.sock")
}

// holderPID returns the PID of the process holding the node's mount namespace.
func (l *Lab) holderPID(n Node) (int, error) {
	data, err := os.ReadFile(filepath.Join(l.Dir, "pids", n.Name+"-holder.pid"))
	if err != nil {
		return 0, fmt.Errorf("read holder of %s: %w", n.Name, err)
	}
	first, _, _ := strings.Cut(string(data), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0, fmt.Errorf("parse holder pid of %s: %w", n.Name, err)
	}
	return pid, nil
}

// nodeCommand wraps argv to run inside the node's network, mount and UTS namespaces.
func (l *Lab) nodeCommand(n Node, argv ...string) ([]string, error) {
	pid, err := l.holderPID(n)
	if err != nil {
		return nil, err
	}
	return append([]string{"nsenter", "--target", strconv.Itoa(pid), "--mount", "--uts", "--net", "--"}, argv...), nil
}

// startRealNode sets up node n's namespaces and starts containerd, imports the images
// and starts the kubelet. The node's network namespace exists already.
func (l *Lab) startRealNode(ctx context.Context, cs kubernetes.Interface, n Node) error {
	if err := l.prepareRealNodeDirs(n); err != nil {
		return err
	}
	if err := makeNodeCgroups(n); err != nil {
		return err
	}
	if err := l.startHolder(ctx, n); err != nil {
		return err
	}
	if err := l.startInNode(n, "containerd", []string{"containerd", "--config", filepath.Join(n.Dir, "containerd.toml")}); err != nil {
		return err
	}
	if err := poll(ctx, 30*time.Second, 100*time.Millisecond, func(context.Context) (bool, error) {
		_, err := run(ctx, "ctr", "--address", n.ContainerdSocket(), "version")
		return err == nil, nil
	}); err != nil {
		return fmt.Errorf("wait for containerd on %s (see %s): %w", n.Name, filepath.Join(l.Dir, "logs", n.Name+"-containerd.log"), err)
	}
	for _, img := range labImages {
		if err := importImage(ctx, n, filepath.Join(l.Opts.ImageDir, img+".tar")); err != nil {
			return err
		}
	}
	if err := l.registerNode(ctx, cs, n); err != nil {
		return err
	}
	if err := l.writeKubeletConfig(n); err != nil {
		return err
	}
	ips := make([]string, 0, len(n.IPs))
	for _, ip := range n.IPs {
		ips = append(ips, ip.String())
	}
	return l.startInNode(n, "kubelet", []string{l.k8sBin("kubelet"),
		"--config", filepath.Join(n.Dir, "kubelet.yaml"),
		"--kubeconfig", l.KubeconfigFabric(),
		"--hostname-override", n.Name,
		"--node-ip", strings.Join(ips, ","),
		"--v=1",
	})
}

// startInNode starts argv detached inside node n (recorded as nodeN-<name>) and moves
// it into the node's system cgroup.
func (l *Lab) startInNode(n Node, name string, argv []string) error {
	full, err := l.nodeCommand(n, argv...)
	if err != nil {
		return err
	}
	pid, err := startDetachedArgv(l.Dir, n.Name+"-"+name, full, argv[0], nil)
	if err != nil {
		return err
	}
	return joinCgroup(pid, nodeSysCgroup(n))
}

// startHolder starts the process that holds node n's mount and UTS namespaces, after
// it has set them up (see the comment at the top of this file).
func (l *Lab) startHolder(ctx context.Context, n Node) error {
	var sh strings.Builder
	fmt.Fprintf(&sh, "set -e\nhostname %s\nmount -t tmpfs -o mode=0755 tmpfs /run/netns\n", n.Name)
	for target, src := range n.hostDirs() {
		fmt.Fprintf(&sh, "mkdir -p %q\nmount --bind %q %q\n", target, src, target)
	}
	// The inherited bpffs mount is replaced (not covered: containerd checks the first
	// mount it finds for the path) by the node's pin dir, moved there and made shared.
	bpfTmp := filepath.Join(n.Dir, "bpf-mnt")
	fmt.Fprintf(&sh, "mkdir -p %[1]q\nmount --bind %[2]q %[1]q\numount -l /sys/fs/bpf\nmount --move %[1]q /sys/fs/bpf\nmount --make-shared /sys/fs/bpf\n",
		bpfTmp, n.BPFPinDir())
	for key := range kernelTunables {
		fmt.Fprintf(&sh, "mount --bind %q %q\n", filepath.Join(n.Dir, "sysctl", strings.ReplaceAll(key, "/", ".")), "/proc/sys/"+key)
	}
	ready := filepath.Join(n.Dir, "holder.ready")
	fmt.Fprintf(&sh, "touch %q\nexec sleep infinity\n", ready)
	argv := NetNS(n.Netns).Command("unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", sh.String())
	pid, err := startDetachedArgv(l.Dir, n.Name+"-holder", argv, "sleep", nil)
	if err != nil {
		return err
	}
	if err := joinCgroup(pid, nodeSysCgroup(n)); err != nil {
		return err
	}
	if err := poll(ctx, 10*time.Second, 20*time.Millisecond, func(context.Context) (bool, error) {
		_, err := os.Stat(ready)
		return err == nil, nil
	}); err != nil {
		return fmt.Errorf("set up the mount namespace of %s (see %s): %w", n.Name, filepath.Join(l.Dir, "logs", n.Name+"-holder.log"), err)
	}
	return nil
}

// prepareRealNodeDirs writes node n's directories, conflist, CNI plugins, sysctl
// files and containerd configuration.
func (l *Lab) prepareRealNodeDirs(n Node) error {
	for _, d := range append(mapValues(n.hostDirs()), filepath.Join(n.Dir, "sysctl"), filepath.Join(n.Dir, "kubelet-plugins"), n.EndpointsDir(), n.BPFPinDir()) {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	// Mount points of the bind mounts: empty directories on the host when missing.
	for target := range n.hostDirs() {
		if err := os.MkdirAll(target, 0o755); err != nil {
			return fmt.Errorf("create mount point %s: %w", target, err)
		}
	}
	for key, v := range kernelTunables {
		if err := os.WriteFile(filepath.Join(n.Dir, "sysctl", strings.ReplaceAll(key, "/", ".")), []byte(v+"\n"), 0o644); err != nil {
			return fmt.Errorf("write sysctl file of %s: %w", n.Name, err)
		}
	}
	// The primary CNI only (ptp + host-local with its default dataDir, the node's
	// /var/lib/cni): bgplbd, run by the DaemonSet, chains bgplb itself.
	if err := writePrimaryConflist(n); err != nil {
		return err
	}
	for _, p := range cniPlugins {
		if err := os.Symlink(l.k8sBin(p), filepath.Join(n.CNIBinDir(), p)); err != nil {
			return fmt.Errorf("link CNI plugin %s for %s: %w", p, n.Name, err)
		}
	}
	pause, err := imageRef(l.Opts.ImageDir, "pause")
	if err != nil {
		return err
	}
	conf := fmt.Sprintf(`version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
[grpc]
  address = "/run/containerd/containerd.sock"
[ttrpc]
  address = ""
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/net.d"
    max_conf_num = 1
`, pause)
	if err := os.WriteFile(filepath.Join(n.Dir, "containerd.toml"), []byte(conf), 0o644); err != nil {
		return fmt.Errorf("write containerd config of %s: %w", n.Name, err)
	}
	return nil
}

// writePrimaryConflist writes node n's conflist with ptp and host-local only.
func writePrimaryConflist(n Node) error {
	ranges := [][]map[string]string{}
	routes := []map[string]string{}
	for _, p := range n.PodCIDRs {
		ranges = append(ranges, []map[string]string{{"subnet": p.String()}})
		dst := "0.0.0.0/0"
		if p.Addr().Is6() {
			dst = "::/0"
		}
		routes = append(routes, map[string]string{"dst": dst})
	}
	conflist := map[string]any{
		"cniVersion": "1.0.0",
		"name":       CNINetworkName,
		"plugins": []any{map[string]any{
			"type": "ptp", "mtu": 1500, "ipMasq": false,
			"ipam": map[string]any{"type": "host-local", "ranges": ranges, "routes": routes},
		}},
	}
	data, err := json.MarshalIndent(conflist, "", "  ")
	if err != nil {
		return fmt.Errorf("marshal conflist of %s: %w", n.Name, err)
	}
	if err := os.WriteFile(filepath.Join(n.CNIConfDir(), CNIConflistFile), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write conflist of %s: %w", n.Name, err)
	}
	return nil
}

// writeKubeletConfig writes node n's KubeletConfiguration.
func (l *Lab) writeKubeletConfig(n Node) error {
	cfg := map[string]any{
		"apiVersion":               "kubelet.config.k8s.io/v1beta1",
		"kind":                     "KubeletConfiguration",
		"cgroupDriver":             "cgroupfs",
		"cgroupRoot":               "/" + nodeCgroup(n),
		"failCgroupV1":             false,
		"failSwapOn":               false,
		"containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
		"address":                  n.IPs[0].String(),
		"readOnlyPort":             0,
		"healthzBindAddress":       "127.0.0.1",
		"volumePluginDir":          filepath.Join(n.Dir, "kubelet-plugins"),
		"resolvConf":               "",
		"serializeImagePulls":      false,
		// The imported images must stay: there is no registry to pull them from again.
		"imageGCHighThresholdPercent": 100,
		"imageGCLowThresholdPercent":  99,
		// The lab shares one disk and memory with everything else on the machine.
		"evictionHard": map[string]string{"memory.available": "10Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
		// The API server reaches the kubelet for logs and exec; the lab is one machine.
		"authentication": map[string]any{"anonymous": map[string]any{"enabled": true}, "webhook": map[string]any{"enabled": false}},
		"authorization":  map[string]any{"mode": "AlwaysAllow"},
		"kubeAPIQPS":     50,
		"kubeAPIBurst":   100,
	}
	data, err := json.MarshalIndent(cfg, "", "  ") // JSON is YAML
	if err != nil {
		return fmt.Errorf("marshal kubelet config of %s: %w", n.Name, err)
	}
	if err := os.WriteFile(filepath.Join(n.Dir, "kubelet.yaml"), data, 0o644); err != nil {
		return fmt.Errorf("write kubelet config of %s: %w", n.Name, err)
	}
	return nil
}

// registerNode creates node n's Node object with its pod CIDRs before its kubelet
// starts: the lab runs no node IPAM controller, and the kubelet keeps spec.podCIDRs of
// an existing Node (and does not add the not-ready taint it registers new ones with).
func (l *Lab) registerNode(ctx context.Context, cs kubernetes.Interface, n Node) error {
	cidrs := make([]string, 0, len(n.PodCIDRs))
	for _, p := range n.PodCIDRs {
		cidrs = append(cidrs, p.String())
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: map[string]string{
			"kubernetes.io/hostname": n.Name, "kubernetes.io/os": "linux", "kubernetes.io/arch": goarch()}},
		Spec: corev1.NodeSpec{PodCIDR: cidrs[0], PodCIDRs: cidrs},
	}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create Node %s: %w", n.Name, err)
	}
	return nil
}

// startContainerdNode starts real node n (its network namespace is attached) and
// kube-proxy in it.
func (l *Lab) startContainerdNode(ctx context.Context, n Node) error {
	cs, err := l.Clientset()
	if err != nil {
		return err
	}
	if err := l.startRealNode(ctx, cs, n); err != nil {
		return err
	}
	return l.startKubeProxy(n)
}
