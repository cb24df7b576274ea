package lab

import (
	"context"
	"fmt"
)

// sysctls applied inside every lab namespace: forwarding on, no reverse-path filter
// (ECMP and asymmetric paths are normal in the lab), no IPv6 duplicate address detection
// (addresses are usable at once). Forwarding namespaces (the router) hash ECMP on the
// 5-tuple, so one client's connections spread over the next hops as on a real router
// with L4 hashing.
func nsSysctls(forward bool) []string {
	f := "0"
	if forward {
		f = "1"
	}
	s := []string{
		"net.ipv4.ip_forward=" + f,
		"net.ipv4.conf.all.rp_filter=0",
		"net.ipv4.conf.default.rp_filter=0",
		"net.ipv6.conf.all.forwarding=" + f,
		"net.ipv6.conf.all.accept_dad=0",
		"net.ipv6.conf.default.accept_dad=0",
	}
	if forward {
		// No ICMP redirects: a client on the fabric keeps sending VIP traffic to the
		// router, as with a router that does not redirect (or a client that ignores it).
		s = append(s, "net.ipv4.fib_multipath_hash_policy=1", "net.ipv6.fib_multipath_hash_policy=1",
			"net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.default.send_redirects=0")
	} else {
		s = append(s, "net.ipv4.conf.all.accept_redirects=0", "net.ipv6.conf.all.accept_redirects=0")
	}
	return s
}

// createNetns creates a namespace, brings lo up and applies the sysctls.
func createNetns(ctx context.Context, name string, forward bool) error {
	if err := ipCmds(ctx,
		[]string{"netns", "add", name},
		[]string{"-n", name, "link", "set", "lo", "up"},
	); err != nil {
		return err
	}
	if _, err := NetNS(name).Exec(ctx, append([]string{"sysctl", "-q", "-w"}, nsSysctls(forward)...)...); err != nil {
		return fmt.Errorf("set sysctls in %s: %w", name, err)
	}
	return nil
}

// buildRouterAndClient creates bgplb-router (fabric bridge, client LAN) and bgplb-client.
func buildRouterAndClient(ctx context.Context, ipv6 bool) error {
	if err := createNetns(ctx, RouterNS, true); err != nil {
		return err
	}
	if err := createNetns(ctx, ClientNS, false); err != nil {
		return err
	}
	r := []string{"-n", RouterNS}
	cmds := [][]string{
		append(r, "link", "add", bridgeName, "type", "bridge", "forward_delay", "0", "stp_state", "0"),
		append(r, "addr", "add", RouterFabricV4.String()+"/24", "dev", bridgeName),
		append(r, "link", "set", bridgeName, "up"),
		append(r, "link", "add", "eth-client", "type", "veth", "peer", "name", "eth0", "netns", ClientNS),
		append(r, "addr", "add", RouterClientV4.String()+"/24", "dev", "eth-client"),
		append(r, "link", "set", "eth-client", "up"),
		{"-n", ClientNS, "addr", "add", ClientV4.String() + "/24", "dev", "eth0"},
		{"-n", ClientNS, "link", "set", "eth0", "up"},
		{"-n", ClientNS, "route", "add", "default", "via", RouterClientV4.String()},
	}
	if ipv6 {
		cmds = append(cmds,
			append(r, "addr", "add", RouterFabricV6.String()+"/64", "dev", bridgeName, "nodad"),
			append(r, "addr", "add", RouterClientV6.String()+"/64", "dev", "eth-client", "nodad"),
			[]string{"-n", ClientNS, "addr", "add", ClientV6.String() + "/64", "dev", "eth0", "nodad"},
			[]string{"-n", ClientNS, "-6", "route", "add", "default", "via", RouterClientV6.String()},
		)
	}
	return ipCmds(ctx, cmds...)
}

// attachToFabric creates namespace ns with eth0 on the fabric bridge (router-side
// port routerPort), the given addresses and default routes via the router.
func attachToFabric(ctx context.Context, ns, routerPort string, v4 string, v6 string, forward bool) error {
	if err := createNetns(ctx, ns, forward); err != nil {
		return err
	}
	r := []string{"-n", RouterNS}
	n := []string{"-n", ns}
	cmds := [][]string{
		append(r, "link", "add", routerPort, "type", "veth", "peer", "name", "eth0", "netns", ns),
		append(r, "link", "set", routerPort, "master", bridgeName),
		append(r, "link", "set", routerPort, "up"),
		append(n, "addr", "add", v4+"/24", "dev", "eth0"),
		append(n, "link", "set", "eth0", "up"),
		append(n, "route", "add", "default", "via", RouterFabricV4.String()),
	}
	if v6 != "" {
		cmds = append(cmds,
			append(n, "addr", "add", v6+"/64", "dev", "eth0", "nodad"),
			append(n, "-6", "route", "add", "default", "via", RouterFabricV6.String()),
		)
	}
	return ipCmds(ctx, cmds...)
}

// podRoutes installs the static routes for a node's pod CIDRs on the router (until the
// daemon exports pod CIDRs over BGP).
func podRoutes(ctx context.Context, n Node) error {
	var cmds [][]string
	for i, cidr := range n.PodCIDRs {
		if i < len(n.IPs) {
			cmds = append(cmds, []string{"-n", RouterNS, "route", "add", cidr.String(), "via", n.IPs[i].String()})
		}
	}
	return ipCmds(ctx, cmds...)
}
