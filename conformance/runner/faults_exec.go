package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/bgplb/bgplb/conformance/suite"
)

// ExecFaults raises faults through a command (--faults-exec), for clusters where they
// cannot go through the API: the lab's `bgplb-lab fault --dir DIR`, or a script of
// yours. The command gets one of these argument lists and exits 0 when done:
//
//	capabilities                          print the words it supports, of: daemon router-bgp apiserver node-routes node-link node-exec
//	signal-daemon NODE SIGNUM restart|stay-down   signal bgplbd on NODE; with restart, start it again once it exited
//	kill-router-bgp                       SIGKILL the router's BGP daemon, return once it is gone
//	start-router-bgp                      start the router's BGP daemon again
//	pause-apiserver true|false            make the API server stop answering (true) or answer again
//	node-routes NODE PREFIX               print NODE's kernel routes for exactly PREFIX as a JSON array of strings
//	node-link NODE up|down                cut NODE off the network (down: its link towards the router, the
//	                                      router's own interface staying up) or restore it (up)
//	node-exec NODE -- ARGV...             run ARGV on NODE as root in the node's own network and mount
//	                                      namespaces, bgplbctl on its PATH; stdin, stdout and a non-zero
//	                                      exit pass through (the CNI-CHAINED tests)
type ExecFaults struct {
	Exec suite.Exec
}

// Faults capabilities a --faults-exec command may print.
const (
	CapDaemon     = "daemon"
	CapRouterBGP  = "router-bgp"
	CapAPIServer  = "apiserver"
	CapNodeRoutes = "node-routes"
	CapNodeLink   = "node-link"
	CapNodeExec   = "node-exec"
)

// Capabilities asks the command what it supports.
func (f ExecFaults) Capabilities(ctx context.Context) ([]string, error) {
	out, err := f.Exec.Run(ctx, "capabilities")
	if err != nil {
		return nil, fmt.Errorf("ask the faults command for its capabilities: %w", err)
	}
	return strings.Fields(string(out)), nil
}

// SignalDaemon implements suite.Faults.
func (f ExecFaults) SignalDaemon(ctx context.Context, node string, sig syscall.Signal, restart bool) error {
	mode := "stay-down"
	if restart {
		mode = "restart"
	}
	_, err := f.Exec.Run(ctx, "signal-daemon", node, strconv.Itoa(int(sig)), mode)
	return err
}

// KillRouterBGP implements suite.RouterFaults.
func (f ExecFaults) KillRouterBGP(ctx context.Context) error {
	_, err := f.Exec.Run(ctx, "kill-router-bgp")
	return err
}

// StartRouterBGP implements suite.RouterFaults.
func (f ExecFaults) StartRouterBGP(ctx context.Context) error {
	_, err := f.Exec.Run(ctx, "start-router-bgp")
	return err
}

// PauseAPIServer implements suite.ControlPlaneFaults.
func (f ExecFaults) PauseAPIServer(ctx context.Context, pause bool) error {
	_, err := f.Exec.Run(ctx, "pause-apiserver", strconv.FormatBool(pause))
	return err
}

// Routes implements suite.NodeRoutes.
func (f ExecFaults) Routes(ctx context.Context, node string, prefix netip.Prefix) ([]string, error) {
	out, err := f.Exec.Run(ctx, "node-routes", node, prefix.String())
	if err != nil {
		return nil, err
	}
	var routes []string
	if err := json.Unmarshal(out, &routes); err != nil {
		return nil, fmt.Errorf("decode node-routes output %q: %w", out, err)
	}
	return routes, nil
}

// SetNodeLink implements suite.NodeLinkFaults.
func (f ExecFaults) SetNodeLink(ctx context.Context, node string, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	_, err := f.Exec.Run(ctx, "node-link", node, state)
	return err
}

// NodeExec implements suite.NodeExec.
func (f ExecFaults) NodeExec(ctx context.Context, node string, stdin []byte, argv ...string) ([]byte, error) {
	return f.Exec.RunInput(ctx, stdin, append([]string{"node-exec", node, "--"}, argv...)...)
}

// addExecFaults gives s the adapters the faults command supports.
func addExecFaults(ctx context.Context, s *suite.Suite, prefixText string) error {
	prefix, err := suite.ParseExec(prefixText)
	if err != nil {
		return err
	}
	f := ExecFaults{Exec: prefix}
	caps, err := f.Capabilities(ctx)
	if err != nil {
		return err
	}
	for _, c := range caps {
		if !slices.Contains([]string{CapDaemon, CapRouterBGP, CapAPIServer, CapNodeRoutes, CapNodeLink, CapNodeExec}, c) {
			return fmt.Errorf("the faults command names an unknown capability %q", c)
		}
	}
	if slices.Contains(caps, CapDaemon) {
		s.Faults = f
	}
	if slices.Contains(caps, CapRouterBGP) {
		s.RouterFaults = f
	}
	if slices.Contains(caps, CapAPIServer) {
		s.ControlPlaneFaults = f
	}
	if slices.Contains(caps, CapNodeRoutes) {
		s.NodeRoutes = f
	}
	if slices.Contains(caps, CapNodeLink) {
		s.NodeLinkFaults = f
	}
	if slices.Contains(caps, CapNodeExec) {
		s.NodeExec = f
	}
	return nil
}
