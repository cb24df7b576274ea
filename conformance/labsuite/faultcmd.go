package labsuite

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/bgplb/bgplb/conformance/lab"
	"github.com/bgplb/bgplb/conformance/runner"
)

// FaultCommand answers one request of bgplb-conformance's --faults-exec protocol
// (runner.ExecFaults) for the lab l, writing what the request prints to out. It is
// `bgplb-lab fault --dir DIR ARGS...`.
func FaultCommand(ctx context.Context, l *lab.Lab, args []string, out io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("fault: no request (want one of capabilities, signal-daemon, kill-router-bgp, start-router-bgp, pause-apiserver, node-routes, node-link, node-exec)")
	}
	f, nr := Faults{Lab: l}, NodeRoutes{Lab: l}
	want := func(n int) error {
		if len(args) != n+1 {
			return fmt.Errorf("fault %s: want %d arguments, got %q", args[0], n, args[1:])
		}
		return nil
	}
	switch args[0] {
	case "capabilities":
		caps := []string{runner.CapDaemon, runner.CapRouterBGP, runner.CapAPIServer, runner.CapNodeRoutes, runner.CapNodeLink}
		if l.Opts.Runtime == lab.RuntimeContainerd {
			caps = append(caps, runner.CapNodeExec) // only real nodes are machines of their own
		}
		_, err := fmt.Fprintln(out, strings.Join(caps, " "))
		return err
	case "signal-daemon":
		if err := want(3); err != nil {
			return err
		}
		sig, err := strconv.Atoi(args[2])
		if err != nil {
			return fmt.Errorf("fault signal-daemon: signal %q: %w", args[2], err)
		}
		if args[3] != "restart" && args[3] != "stay-down" {
			return fmt.Errorf("fault signal-daemon: %q: want restart or stay-down", args[3])
		}
		return f.SignalDaemon(ctx, args[1], syscall.Signal(sig), args[3] == "restart")
	case "kill-router-bgp":
		return f.KillRouterBGP(ctx)
	case "start-router-bgp":
		return f.StartRouterBGP(ctx)
	case "pause-apiserver":
		if err := want(1); err != nil {
			return err
		}
		pause, err := strconv.ParseBool(args[1])
		if err != nil {
			return fmt.Errorf("fault pause-apiserver: %w", err)
		}
		return f.PauseAPIServer(ctx, pause)
	case "node-routes":
		if err := want(2); err != nil {
			return err
		}
		p, err := netip.ParsePrefix(args[2])
		if err != nil {
			return fmt.Errorf("fault node-routes: %w", err)
		}
		routes, err := nr.Routes(ctx, args[1], p)
		if err != nil {
			return err
		}
		if routes == nil {
			routes = []string{}
		}
		return json.NewEncoder(out).Encode(routes)
	case "node-exec":
		if len(args) < 2 {
			return fmt.Errorf("fault node-exec: want NODE -- ARGV, got %q", args)
		}
		argv := args[2:]
		if len(argv) > 0 && argv[0] == "--" {
			argv = argv[1:]
		}
		if len(argv) == 0 {
			return fmt.Errorf("fault node-exec: want NODE -- ARGV..., got %q", args[1:])
		}
		return l.NodeExec(ctx, args[1], os.Stdin, out, os.Stderr, argv...)
	case "node-link":
		if err := want(2); err != nil {
			return err
		}
		if args[2] != "up" && args[2] != "down" {
			return fmt.Errorf("fault node-link: %q: want up or down", args[2])
		}
		return f.SetNodeLink(ctx, args[1], args[2] == "up")
	}
	return fmt.Errorf("fault: unknown request %q", args[0])
}
