package main

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

// podLink is what ADD and CHECK derive from prevResult and the pod's netns.
type podLink struct {
	ips         []netip.Addr // pod IPs on the container interface, from prevResult
	hostIfName  string       // host-side veth of the container interface
	hostIfIndex int          // its ifindex in this (the host) network namespace
}

// inspectPod validates prevResult for the container interface ifName and finds the
// host-side veth, like the bandwidth plugin's getHostInterface: the container interface's
// veth peer index is read inside the netns, and the interface with that index in the host
// namespace must be a veth whose own peer is the container interface. It has no side
// effects. Errors are *types.Error: 7 when prevResult is unusable, 8 when the netns cannot
// be entered or the interface is missing or not a veth there.
func inspectPod(res *current.Result, netnsPath, ifName string) (podLink, error) {
	var pl podLink
	if len(res.Interfaces) == 0 {
		return pl, cniError(types.ErrInvalidNetworkConfig, "prevResult has no interfaces", nil)
	}
	ctrIdx := -1
	var hostNames []string
	for i, iface := range res.Interfaces {
		switch {
		case iface.Sandbox == "":
			hostNames = append(hostNames, iface.Name)
		case iface.Name == ifName && ctrIdx < 0:
			ctrIdx = i
		}
	}
	if ctrIdx < 0 {
		return pl, cniError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf("prevResult has no interface %q in a sandbox", ifName), nil)
	}
	for _, ipc := range res.IPs {
		if ipc.Interface != nil && *ipc.Interface != ctrIdx {
			continue
		}
		addr, ok := netip.AddrFromSlice(ipc.Address.IP)
		if !ok {
			continue
		}
		pl.ips = append(pl.ips, addr.Unmap())
	}
	if len(pl.ips) == 0 {
		return pl, cniError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf("prevResult has no IPs for interface %q", ifName), nil)
	}

	var ctrIndex, peerIndex int
	err := ns.WithNetNSPath(netnsPath, func(ns.NetNS) error {
		l, err := netlinksafe.LinkByName(ifName)
		if err != nil {
			return fmt.Errorf("look up interface %q: %w", ifName, err)
		}
		if _, ok := l.(*netlink.Veth); !ok {
			return fmt.Errorf("interface %q is a %s, not a veth", ifName, l.Type())
		}
		ctrIndex, peerIndex = l.Attrs().Index, l.Attrs().ParentIndex
		return nil
	})
	if err != nil {
		return pl, cniError(types.ErrInvalidNetNS,
			fmt.Sprintf("find container interface %q in netns %s", ifName, netnsPath), err)
	}
	if peerIndex <= 0 {
		return pl, cniError(types.ErrInvalidNetNS,
			fmt.Sprintf("container interface %q has no veth peer", ifName), nil)
	}
	host, err := netlink.LinkByIndex(peerIndex)
	if err != nil {
		return pl, cniError(types.ErrInvalidNetNS,
			fmt.Sprintf("veth peer (ifindex %d) of %q is not in the host namespace", peerIndex, ifName), err)
	}
	if _, ok := host.(*netlink.Veth); !ok || host.Attrs().ParentIndex != ctrIndex {
		return pl, cniError(types.ErrInvalidNetNS,
			fmt.Sprintf("interface %s (ifindex %d) in the host namespace is not the veth peer of %q",
				host.Attrs().Name, peerIndex, ifName), nil)
	}
	pl.hostIfName, pl.hostIfIndex = host.Attrs().Name, peerIndex
	// Like bandwidth: when the primary plugin lists host interfaces, ours must be one.
	if len(hostNames) > 0 && !slices.Contains(hostNames, pl.hostIfName) {
		return pl, cniError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf("host veth %s of %q is not among prevResult's host interfaces %v", pl.hostIfName, ifName, hostNames), nil)
	}
	return pl, nil
}
