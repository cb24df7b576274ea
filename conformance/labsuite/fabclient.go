package labsuite

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	"github.com/bgplb/bgplb/conformance/lab"
)

// FabricClient is bgplb-fabclient, on the node fabric: VIPs are routed via the router
// (its default route) although the nodes are on its own subnet.
type FabricClient struct{ Client }

const replyTable = "bgplb_replies"

// CountReplies counts, with nftables counters on the client's eth0 ingress hook, the
// packets from src that came from the router's fabric MAC and from any other MAC
// while fn runs.
func (c FabricClient) CountReplies(ctx context.Context, src netip.Addr, fn func() error) (int, int, error) {
	mac, err := routerMAC(ctx)
	if err != nil {
		return 0, 0, err
	}
	rules := fmt.Sprintf(`table netdev %[1]s {
	counter via_router {}
	counter direct {}
	chain in {
		type filter hook ingress device "eth0" priority 0; policy accept;
		ip saddr %[2]s ether saddr %[3]s counter name "via_router"
		ip saddr %[2]s ether saddr != %[3]s counter name "direct"
	}
}
`, replyTable, src, mac)
	if out, err := c.NS.Exec(ctx, "sh", "-c", "nft -f - <<'EOF'\n"+rules+"EOF"); err != nil {
		return 0, 0, fmt.Errorf("install reply counters in %s: %w: %s", c.NS, err, out)
	}
	defer func() {
		// Best effort: the namespace goes away with the lab anyway.
		_, _ = c.NS.Exec(context.Background(), "nft", "delete", "table", "netdev", replyTable)
	}()
	if err := fn(); err != nil {
		return 0, 0, err
	}
	out, err := c.NS.Exec(ctx, "nft", "-j", "list", "counters", "table", "netdev", replyTable)
	if err != nil {
		return 0, 0, fmt.Errorf("read reply counters: %w: %s", err, out)
	}
	var doc struct {
		Nftables []struct {
			Counter *struct {
				Name    string `json:"name"`
				Packets int    `json:"packets"`
			} `json:"counter"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return 0, 0, fmt.Errorf("decode reply counters: %w: %s", err, out)
	}
	var via, direct int
	for _, o := range doc.Nftables {
		if o.Counter == nil {
			continue
		}
		switch o.Counter.Name {
		case "via_router":
			via = o.Counter.Packets
		case "direct":
			direct = o.Counter.Packets
		}
	}
	return via, direct, nil
}

// routerMAC is the MAC address of the router's fabric bridge (the clients' gateway).
func routerMAC(ctx context.Context) (string, error) {
	out, err := lab.NetNS(lab.RouterNS).Exec(ctx, "ip", "-j", "link", "show", "br-fabric")
	if err != nil {
		return "", fmt.Errorf("read the router's fabric MAC: %w: %s", err, out)
	}
	var links []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 || links[0].Address == "" {
		return "", fmt.Errorf("read the router's fabric MAC from %q: %v", strings.TrimSpace(string(out)), err)
	}
	return links[0].Address, nil
}
