package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Lab is a running lab. Its exported fields are saved in <Dir>/lab.json by Up and read
// back by Open.
type Lab struct {
	// Dir is the lab state directory.
	Dir string `json:"dir"`
	// Opts are the options the lab was started with (Logf is not saved).
	Opts Options `json:"options"`
	// Nodes are the lab nodes, node1 first.
	Nodes []Node `json:"nodes"`
	// Started is when Up began.
	Started time.Time `json:"started"`
	// Prefix is the name prefix the lab was started with ($BGPLB_LAB_PREFIX): Down
	// refuses to run with another one, which would miss the lab's namespaces.
	Prefix string `json:"prefix"`
}

// Kubeconfig is the admin kubeconfig for the root namespace (through the forwarder).
func (l *Lab) Kubeconfig() string { return filepath.Join(l.Dir, kubeconfigRoot) }

// KubeconfigFabric is the admin kubeconfig for processes inside the lab namespaces.
func (l *Lab) KubeconfigFabric() string { return filepath.Join(l.Dir, kubeconfigFabric) }

// Router returns the reader of the lab's FRR router (Options.Router "frr").
func (l *Lab) Router() Router { return Router{VtyDir: filepath.Join(l.Dir, "frr")} }

// RESTConfig returns the admin rest.Config for the root namespace.
func (l *Lab) RESTConfig() (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", l.Kubeconfig())
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", l.Kubeconfig(), err)
	}
	cfg.QPS = 100
	cfg.Burst = 200
	return cfg, nil
}

// Clientset returns an admin clientset for the root namespace.
func (l *Lab) Clientset() (*kubernetes.Clientset, error) {
	cfg, err := l.RESTConfig()
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create clientset: %w", err)
	}
	return cs, nil
}

// Node returns the lab node with the given name (node1…).
func (l *Lab) Node(name string) (Node, bool) {
	for _, n := range l.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// labBinary is the bgplb-lab executable that runs the forwarder and the lab kubelets.
func (l *Lab) labBinary() string { return filepath.Join(l.Opts.BinDir, "bgplb-lab") }

// ErrAlreadyUp is returned by Up when a lab exists and Recreate is not set.
var ErrAlreadyUp = errors.New("a lab is already up: run `bgplb-lab down` first or use --recreate")

// Up brings the lab up. On failure after the preflight it tears down what it made.
func Up(ctx context.Context, opts Options) (*Lab, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	started := time.Now()
	if opts.Recreate {
		if err := Down(opts.Dir); err != nil {
			return nil, fmt.Errorf("tear down the existing lab: %w", err)
		}
	}
	if err := preflight(opts); err != nil {
		return nil, err
	}
	l := &Lab{Dir: opts.Dir, Opts: opts, Started: started, Prefix: Prefix}
	for i := 1; i <= opts.Nodes; i++ {
		l.Nodes = append(l.Nodes, makeNode(opts.Dir, i, opts.IPv6))
	}
	if err := l.up(ctx); err != nil {
		if derr := Down(opts.Dir); derr != nil {
			return nil, fmt.Errorf("%w (and tearing down failed: %v)", err, derr)
		}
		return nil, err
	}
	opts.Logf("lab up in %s (%d nodes)", time.Since(started).Round(100*time.Millisecond), opts.Nodes)
	return l, nil
}

func (l *Lab) up(ctx context.Context) error {
	logf := l.Opts.Logf
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return fmt.Errorf("create lab dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(l.Dir, markerFile), []byte("bgplb lab state dir; remove with `bgplb-lab down`\n"), 0o644); err != nil {
		return fmt.Errorf("write lab marker: %w", err)
	}
	if err := l.save(); err != nil {
		return err
	}
	if err := ensureBPFFS(); err != nil {
		return err
	}
	// Pins left by a lab that crashed are stale (the preflight saw no lab): start clean.
	if err := os.RemoveAll(BPFPinRoot); err != nil {
		return fmt.Errorf("remove stale pins in %s: %w", BPFPinRoot, err)
	}
	if err := os.MkdirAll(BPFPinRoot, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", BPFPinRoot, err)
	}
	logf("creating namespaces and links")
	if err := buildRouterAndClient(ctx, l.Opts.IPv6); err != nil {
		return err
	}
	cpV6 := ""
	if l.Opts.IPv6 {
		cpV6 = ControlPlaneV6.String()
	}
	if err := attachToFabric(ctx, ControlPlaneNS, "veth-cp", ControlPlaneV4.String(), cpV6, false); err != nil {
		return err
	}
	fabV6 := ""
	if l.Opts.IPv6 {
		fabV6 = FabricClientV6.String()
	}
	if err := attachToFabric(ctx, FabricClientNS, "veth-fabcl", FabricClientV4.String(), fabV6, false); err != nil {
		return err
	}
	frrDir := filepath.Join(l.Dir, "frr")
	if l.Opts.Router == RouterFRR {
		logf("starting FRR")
		// The nodes' IPv4 addresses: in a dual-stack lab one session per node carries
		// both families (the suite's BGPPeer lists addressFamilies IPv4 and IPv6).
		var nodeAddrs []netip.Addr
		for _, n := range l.Nodes {
			nodeAddrs = append(nodeAddrs, n.IPs[0])
		}
		if err := writeFRRConfig(frrDir, l.Opts.IPv6, l.Opts.NodeASN, nodeAddrs); err != nil {
			return err
		}
		if _, err := startDetached(l.Dir, "zebra", RouterNS, frrArgs("zebra", frrDir), nil); err != nil {
			return err
		}
	} else {
		logf("starting BIRD")
		if err := l.startBIRD(ctx); err != nil {
			return err
		}
	}
	logf("generating certificates")
	p, err := newPKI(filepath.Join(l.Dir, "pki"), l.Opts.IPv6)
	if err != nil {
		return err
	}
	if err := p.writeKubeconfig(l.Kubeconfig(), "https://"+ForwardAddr); err != nil {
		return err
	}
	if err := p.writeKubeconfig(l.KubeconfigFabric(), fmt.Sprintf("https://%s:%d", ControlPlaneV4, APIServerPort)); err != nil {
		return err
	}
	logf("starting etcd and kube-apiserver")
	if l.Opts.Router == RouterFRR {
		// bgpd connects to zebra's socket; zebra creates it within milliseconds.
		if err := poll(ctx, 10*time.Second, 50*time.Millisecond, func(context.Context) (bool, error) {
			_, err := os.Stat(filepath.Join(frrDir, "zserv.api"))
			return err == nil, nil
		}); err != nil {
			return fmt.Errorf("wait for zebra's socket (see %s): %w", filepath.Join(l.Dir, "logs", "zebra.log"), err)
		}
		if _, err := startDetached(l.Dir, "bfdd", RouterNS, frrArgs("bfdd", frrDir), nil); err != nil {
			return err
		}
		if _, err := startDetached(l.Dir, "bgpd", RouterNS, frrArgs("bgpd", frrDir), nil); err != nil {
			return err
		}
	}
	if err := l.startControlPlane(ctx, p); err != nil {
		return err
	}
	cs, err := l.Clientset()
	if err != nil {
		return err
	}
	if l.startsDaemon() && l.Opts.Runtime != RuntimeContainerd { // real nodes: the manifests install it all
		if err := ensureNamespace(ctx, cs, DaemonNamespace); err != nil {
			return err
		}
		logf("installing the bgplb CRDs")
		if err := l.InstallCRDs(ctx); err != nil {
			return err
		}
	}
	logf("starting %d nodes", len(l.Nodes))
	for _, n := range l.Nodes {
		if err := l.startNode(ctx, n); err != nil {
			return err
		}
	}
	if err := l.waitServiceAccount(ctx, cs, 60*time.Second); err != nil {
		return err
	}
	if l.Opts.NetworkPolicy {
		logf("starting the NetworkPolicy enforcer on the nodes")
		if err := l.startNetworkPolicy(ctx, cs); err != nil {
			return err
		}
	}
	logf("waiting for nodes to be Ready")
	if err := l.waitNodesReady(ctx, cs, 60*time.Second); err != nil {
		return err
	}
	if err := poll(ctx, 20*time.Second, 200*time.Millisecond, func(ctx context.Context) (bool, error) {
		_, err := l.BGPRouter().Neighbors(ctx)
		return err == nil, nil
	}); err != nil {
		return fmt.Errorf("wait for the %s router to answer (see %s): %w", l.Opts.Router, filepath.Join(l.Dir, "logs"), err)
	}
	if l.Opts.Runtime == RuntimeContainerd && !l.Opts.NoDaemon {
		logf("installing bgplb from manifests/base and the image in %s", l.Opts.ImageDir)
		if err := l.installBgplb(ctx, cs); err != nil {
			return err
		}
	}
	return nil
}

func (l *Lab) save() error {
	data, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return fmt.Errorf("marshal lab state: %w", err)
	}
	if err := os.WriteFile(filepath.Join(l.Dir, stateFile), data, 0o644); err != nil {
		return fmt.Errorf("write lab state: %w", err)
	}
	return nil
}

// Open returns the lab recorded in dir ("" means the default dir).
func Open(dir string) (*Lab, error) {
	if dir == "" {
		dir = DefaultDir
	}
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no lab in %s (run `bgplb-lab up`)", dir)
		}
		return nil, fmt.Errorf("read lab state: %w", err)
	}
	var l Lab
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("decode lab state %s: %w", filepath.Join(dir, stateFile), err)
	}
	l.Opts.Logf = func(string, ...any) {}
	return &l, nil
}

// Down tears down the lab in dir ("" means the default dir): it stops every recorded
// process and every process left inside a lab namespace, deletes the lab namespaces
// (their links go with them), unmounts what the lab mounted under dir, removes the bpffs
// pins under /sys/fs/bpf/bgplb-lab and the lab dir. It is idempotent.
func Down(dir string) error {
	if dir == "" {
		dir = DefaultDir
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("resolve lab dir %q: %w", dir, err)
	}
	dir = abs
	if saved, err := Open(dir); err == nil && saved.Prefix != "" && saved.Prefix != Prefix {
		return fmt.Errorf("the lab in %s was started with BGPLB_LAB_PREFIX=%s (and its BGPLB_LAB_FORWARD); run down with the same environment, not prefix %q", dir, saved.Prefix, Prefix)
	}
	var errs []error

	// 0. Real nodes (--runtime containerd): everything in their cgroups — containerd,
	// its shims, every container, the kubelet and the namespace holders — and the
	// cgroups themselves. Their private mounts go with the mount namespaces.
	if err := downNodeCgroups(); err != nil {
		errs = append(errs, err)
	}

	// 1. Recorded processes (ours and the lab kubelets').
	procs, err := recordedProcesses(dir)
	if err != nil {
		errs = append(errs, err)
	}
	var pids []int
	for _, p := range procs {
		if p.alive() {
			pids = append(pids, p.PID)
		}
	}
	terminate(pids, 2*time.Second) // the lab is disposable: no long graceful shutdowns

	// 2. Anything still running inside a lab namespace (e.g. pod processes of a
	// kubelet that crashed before recording them).
	nss, err := LabNetns()
	if err != nil {
		errs = append(errs, err)
	}
	inodes := map[uint64]bool{}
	for _, ns := range nss {
		if ino, ok := netnsInode(ns.Path()); ok {
			inodes[ino] = true
		}
	}
	terminate(pidsInNetns(inodes), 2*time.Second)

	// 3. Mounts under the lab dir (e.g. namespaces a kubelet bind-mounted there).
	for _, m := range mountsUnder(dir) {
		if err := unmount(m); err != nil {
			errs = append(errs, err)
		}
	}

	// 4. Namespaces.
	for _, ns := range nss {
		if _, err := run(context.Background(), "ip", "netns", "delete", string(ns)); err != nil && ns.Exists() {
			errs = append(errs, err)
		}
	}

	// 5. bpffs pins.
	if err := os.RemoveAll(BPFPinRoot); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", BPFPinRoot, err))
	}

	// 6. The lab dir, only when it is one (marker or state file present).
	if isLabDir(dir) {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("remove lab dir %s: %w", dir, err))
		}
	} else if _, err := os.Stat(dir); err == nil {
		errs = append(errs, fmt.Errorf("%s exists but is not a lab dir (no %s): left in place", dir, markerFile))
	}
	return errors.Join(errs...)
}

func isLabDir(dir string) bool {
	for _, f := range []string{markerFile, stateFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return true
		}
	}
	return false
}

// mountsUnder returns the mount points at or below dir, deepest first.
func mountsUnder(dir string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	// deepest first
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

func ensureNamespace(ctx context.Context, cs kubernetes.Interface, name string) error {
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}
