package lab

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// preflight checks, without changing anything, that Up can work.
func preflight(o Options) error {
	if os.Geteuid() != 0 {
		return errors.New("bgplb-lab up needs root (network namespaces, FRR, bpffs): run it with sudo")
	}
	var missing []string
	for _, p := range []string{"/usr/lib/frr/zebra", "/usr/lib/frr/bgpd"} {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	for _, c := range []string{"vtysh", "etcd", "ip", "sysctl", "nsenter"} {
		if _, err := exec.LookPath(c); err != nil {
			missing = append(missing, c)
		}
	}
	if o.Router == RouterBIRD {
		for _, c := range []string{"bird", "birdc"} {
			if _, err := exec.LookPath(c); err != nil {
				missing = append(missing, c+" (package bird2)")
			}
		}
		if _, err := os.Stat(filepath.Join(o.BinDir, "bgplbctl")); err != nil {
			missing = append(missing, filepath.Join(o.BinDir, "bgplbctl")+" (renders the BIRD snippet)")
		}
	}
	if o.ProxyMode == "nftables" && !o.NoKubeProxy {
		if _, err := exec.LookPath("nft"); err != nil {
			missing = append(missing, "nft")
		}
	}
	if o.ProxyMode == "iptables" && !o.NoKubeProxy {
		if _, err := exec.LookPath("iptables"); err != nil {
			missing = append(missing, "iptables")
		}
	}
	if o.Runtime == RuntimeContainerd {
		for _, c := range []string{"containerd", "containerd-shim-runc-v2", "runc", "ctr", "unshare"} {
			if _, err := exec.LookPath(c); err != nil {
				missing = append(missing, c+" (packages containerd, runc)")
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing tools: %s: run `make deps`", strings.Join(missing, ", "))
	}
	k8s := []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "ptp", "host-local", "loopback"}
	if !o.NoKubeProxy {
		k8s = append(k8s, "kube-proxy")
	}
	if o.Runtime == RuntimeContainerd {
		k8s = append(k8s, "kubelet", "kubectl")
	}
	for _, b := range k8s {
		if !executable(filepath.Join(o.K8sBinDir, b)) {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing Kubernetes/CNI binaries in %s: %s: run `make tools` (or pass --k8s-bin-dir)",
			o.K8sBinDir, strings.Join(missing, ", "))
	}
	for _, b := range []string{"bgplb-lab", "podserver"} {
		if !executable(filepath.Join(o.BinDir, b)) {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing project binaries in %s: %s: run `make build` (or pass --bin-dir)",
			o.BinDir, strings.Join(missing, ", "))
	}
	if err := frrCanReach(o.Dir); err != nil {
		return err
	}
	if isLabDir(o.Dir) {
		return fmt.Errorf("%w (lab dir %s exists)", ErrAlreadyUp, o.Dir)
	}
	if entries, err := os.ReadDir(o.Dir); err == nil && len(entries) > 0 {
		// down removes the lab dir: never adopt one that holds someone else's files.
		return fmt.Errorf("lab dir %s exists, is not empty and is not a lab dir: pick another --dir", o.Dir)
	}
	if nss, _ := LabNetns(); len(nss) > 0 { // a listing error shows up again in Up
		return fmt.Errorf("%w (namespace %s exists)", ErrAlreadyUp, nss[0])
	}
	ln, err := net.Listen("tcp", ForwardAddr)
	if err != nil {
		return fmt.Errorf("the lab's API forwarder needs %s, which is in use (%v): stop whatever listens there (`ss -ltnp`), or set BGPLB_LAB_FORWARD (and BGPLB_LAB_PREFIX) for a second lab", ForwardAddr, err)
	}
	if err := ln.Close(); err != nil {
		return fmt.Errorf("release probe listener on %s: %w", ForwardAddr, err)
	}
	return nil
}

func executable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// ensureBPFFS mounts bpffs at /sys/fs/bpf unless it is mounted already. It stays mounted.
func ensureBPFFS() error {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/bpf", &st); err == nil && st.Type == unix.BPF_FS_MAGIC {
		return nil
	}
	if err := os.MkdirAll("/sys/fs/bpf", 0o755); err != nil {
		return fmt.Errorf("create /sys/fs/bpf: %w", err)
	}
	if err := unix.Mount("bpf", "/sys/fs/bpf", "bpf", 0, ""); err != nil {
		return fmt.Errorf("mount bpffs at /sys/fs/bpf: %w", err)
	}
	return nil
}

func unmount(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	return nil
}

// frrCanReach checks that every existing ancestor of dir lets others traverse it: FRR
// drops privileges to the frr user and must reach <dir>/frr.
func frrCanReach(dir string) error {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		if st, err := os.Stat(d); err == nil && st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("lab dir %s is below %s, which the frr user cannot enter (mode %v): use a dir under /run (default %s)",
				dir, d, st.Mode().Perm(), DefaultDir)
		}
		if d == "/" || d == "." {
			return nil
		}
	}
}
