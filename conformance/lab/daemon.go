package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// daemonProcess returns the recorded bgplbd process of node.
func (l *Lab) daemonProcess(node string) (labProcess, bool, error) {
	procs, err := recordedProcesses(filepath.Join(l.Dir, "pids"))
	if err != nil {
		return labProcess{}, false, err
	}
	for _, p := range procs {
		if p.Name == node+"-bgplbd" {
			return p, p.alive(), nil
		}
	}
	return labProcess{}, false, nil
}

// StartDaemon starts bgplbd on node (in its namespace, with daemonArgs) unless it runs.
func (l *Lab) StartDaemon(ctx context.Context, node string) error {
	n, ok := l.Node(node)
	if !ok {
		return fmt.Errorf("start bgplbd: no lab node %q", node)
	}
	if _, alive, err := l.daemonProcess(node); err != nil {
		return err
	} else if alive {
		return nil
	}
	bin := filepath.Join(l.Opts.BinDir, "bgplbd")
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("start bgplbd on %s: %w", node, err)
	}
	_, err := startDetached(l.Dir, n.Name+"-bgplbd", n.Netns, append([]string{bin}, l.daemonArgs(n)...), DaemonEnv)
	return err
}

// SignalDaemon sends sig to bgplbd on node and waits for it to exit (SIGKILL after
// 15 s); with restart it then starts the daemon again, as a DaemonSet would. On real
// nodes (RuntimeContainerd) it acts on the DaemonSet's pod (signalDaemonPod).
func (l *Lab) SignalDaemon(ctx context.Context, node string, sig syscall.Signal, restart bool) error {
	if l.Opts.Runtime == RuntimeContainerd {
		return l.signalDaemonPod(ctx, node, sig, restart) // bgplbd is a DaemonSet pod there
	}
	p, alive, err := l.daemonProcess(node)
	if err != nil {
		return err
	}
	if alive {
		if err := syscall.Kill(p.PID, sig); err != nil {
			return fmt.Errorf("signal bgplbd on %s (pid %d): %w", node, p.PID, err)
		}
		deadline := time.Now().Add(15 * time.Second)
		for running(p.PID) {
			if time.Now().After(deadline) {
				_ = syscall.Kill(p.PID, syscall.SIGKILL) // it ignored sig: make sure it is gone
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	if !restart {
		return nil
	}
	return l.StartDaemon(ctx, node)
}
