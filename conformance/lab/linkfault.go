package lab

import (
	"context"
	"fmt"
	"slices"
)

// SetNodeLink cuts (up false) or restores (up true) a node's fabric link. The
// router-side end of the node's veth, a port of the fabric bridge in the router
// namespace, goes down: no packet passes either way, while the node's interface,
// addresses and processes stay as they are, and the router's own interface (the
// bridge) stays up. It is a cable pulled behind a switch: only BGP's hold timer or
// BFD notice.
func (l *Lab) SetNodeLink(ctx context.Context, node string, up bool) error {
	if !slices.ContainsFunc(l.Nodes, func(n Node) bool { return n.Name == node }) {
		return fmt.Errorf("set link of node %q: the lab has no such node", node)
	}
	state := "down"
	if up {
		state = "up"
	}
	if err := ipCmds(ctx, []string{"-n", RouterNS, "link", "set", "veth-" + node, state}); err != nil {
		return fmt.Errorf("set link of node %s %s: %w", node, state, err)
	}
	return nil
}
