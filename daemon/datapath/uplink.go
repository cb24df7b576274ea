//go:build linux

package datapath

import (
	"context"
	"fmt"
	"net"

	"k8s.io/klog/v2"

	"github.com/bgplb/bgplb/bpf"
)

// AttachUplinks attaches the uplink program on ingress and the egress program on egress
// of each named interface with mode (auto: tcx, legacy tc where the kernel refuses tcx),
// pinned under pinDir so they survive daemon restarts. Idempotent. The egress program
// turns the replies of flows delivered through the node's stack (bpf.DeliveryStack) back
// into VIP replies, so those replies must leave through one of these interfaces.
func AttachUplinks(ctx context.Context, pinDir string, names []string, mode bpf.AttachMode) error {
	for _, name := range names {
		ifc, err := net.InterfaceByName(name)
		if err != nil {
			return fmt.Errorf("attach uplink program to %s: %w", name, err)
		}
		used, err := bpf.AttachUplinkMode(pinDir, ifc.Index, bpf.UplinkLinkPin(pinDir, name), mode)
		if err != nil {
			return fmt.Errorf("attach uplink program to %s: %w", name, err)
		}
		if _, err := bpf.AttachEgressMode(pinDir, ifc.Index, bpf.EgressLinkPin(pinDir, name), used); err != nil {
			return fmt.Errorf("attach egress program to %s: %w", name, err)
		}
		klog.FromContext(ctx).Info("uplink programs attached", "interface", name, "ifindex", ifc.Index, "attach", used)
	}
	return nil
}

// UpdatePrograms swaps this build's programs into every live pinned link (pod and uplink),
// keeping attachments, maps and conntrack: an upgraded daemon serves with its own programs
// without a window. It returns how many links were updated.
func UpdatePrograms(pinDir string) (int, error) {
	n, err := bpf.UpdatePrograms(pinDir)
	if err != nil {
		return n, fmt.Errorf("update pinned programs in %s: %w", pinDir, err)
	}
	return n, nil
}

// OpenMaps opens (creating when missing) the maps pinned in pinDir.
func OpenMaps(pinDir string) (*bpf.Maps, error) {
	m, err := bpf.OpenMaps(pinDir)
	if err != nil {
		return nil, fmt.Errorf("open datapath maps in %s: %w", pinDir, err)
	}
	return m, nil
}
