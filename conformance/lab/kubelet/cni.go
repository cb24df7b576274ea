package kubelet

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	cnitypes "github.com/containernetworking/cni/pkg/types"
	cnitypes100 "github.com/containernetworking/cni/pkg/types/100"
)

// cniTimeout bounds one ADD or DEL of the whole plugin list (a hung plugin
// then shows up as a setup error and is retried, as with a real runtime).
const cniTimeout = 2 * time.Minute

// network runs the node's CNI configuration through libcni, as a container
// runtime does.
type network struct {
	confDir string
	cni     *libcni.CNIConfig
}

// newNetwork uses the plugins of binDir; exec nil runs them directly (the
// kubelet's own network namespace is the "host" namespace of the pod network).
func newNetwork(binDir, confDir, cacheDir string, exec invoke.Exec) *network {
	return &network{
		confDir: confDir,
		cni:     libcni.NewCNIConfigWithCacheDir([]string{binDir}, cacheDir, exec),
	}
}

// confList loads the first *.conflist (by name) of the configuration directory.
// It is read on every call, so a plugin chained in later is used from then on.
func (n *network) confList() (*libcni.NetworkConfigList, error) {
	files, err := libcni.ConfFiles(n.confDir, []string{".conflist"})
	if err != nil {
		return nil, fmt.Errorf("list CNI configurations in %s: %w", n.confDir, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no *.conflist in %s", n.confDir)
	}
	sort.Strings(files)
	list, err := libcni.ConfListFromFile(files[0])
	if err != nil {
		return nil, fmt.Errorf("load CNI configuration %s: %w", files[0], err)
	}
	return list, nil
}

// podAttachment names one pod's attachment to the network.
type podAttachment struct {
	ContainerID string
	NetnsPath   string
	Namespace   string
	Name        string
	UID         string
}

// runtimeConf is the libcni runtime configuration a CRI runtime would pass.
func runtimeConf(a podAttachment) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID: a.ContainerID,
		NetNS:       a.NetnsPath,
		IfName:      "eth0",
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", a.Namespace},
			{"K8S_POD_NAME", a.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", a.ContainerID},
			{"K8S_POD_UID", a.UID},
		},
	}
}

// add runs CNI ADD and returns the pod's IPs, IPv4 first. On failure it runs
// CNI DEL so no partial attachment (an allocated IP, a veth) is left behind.
func (n *network) add(ctx context.Context, a podAttachment) ([]netip.Addr, error) {
	list, err := n.confList()
	if err != nil {
		return nil, err
	}
	rt := runtimeConf(a)
	ctx, cancel := context.WithTimeout(ctx, cniTimeout)
	defer cancel()
	res, err := n.cni.AddNetworkList(ctx, list, rt)
	if err != nil {
		if delErr := n.cni.DelNetworkList(ctx, list, rt); delErr != nil {
			return nil, fmt.Errorf("add pod network %s: %w (and the cleanup DEL failed: %v)", list.Name, err, delErr)
		}
		return nil, fmt.Errorf("add pod network %s: %w", list.Name, err)
	}
	ips, err := resultIPs(res)
	if err != nil {
		return nil, fmt.Errorf("add pod network %s: %w", list.Name, err)
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("add pod network %s: the result has no IP addresses", list.Name)
	}
	return ips, nil
}

// del runs CNI DEL (libcni supplies the cached ADD result as prevResult).
// It succeeds when the attachment is already gone, as the CNI spec requires of plugins.
func (n *network) del(ctx context.Context, a podAttachment) error {
	list, err := n.confList()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cniTimeout)
	defer cancel()
	if err := n.cni.DelNetworkList(ctx, list, runtimeConf(a)); err != nil {
		return fmt.Errorf("delete pod network %s: %w", list.Name, err)
	}
	return nil
}

// resultIPs extracts the addresses of a CNI result, IPv4 before IPv6.
func resultIPs(res cnitypes.Result) ([]netip.Addr, error) {
	cur, err := cnitypes100.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("convert CNI result version %s: %w", res.Version(), err)
	}
	var v4, v6 []netip.Addr
	for _, ipc := range cur.IPs {
		a, ok := netip.AddrFromSlice(ipc.Address.IP)
		if !ok {
			return nil, fmt.Errorf("invalid IP %q in CNI result", ipc.Address.String())
		}
		a = a.Unmap()
		if a.Is4() {
			v4 = append(v4, a)
		} else {
			v6 = append(v6, a)
		}
	}
	return append(v4, v6...), nil
}
