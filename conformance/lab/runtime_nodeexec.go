package lab

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
)

// NodeExec runs argv on real node node (RuntimeContainerd) as a root shell on that
// machine would: in the node's network, mount and UTS namespaces, so /opt/cni/bin,
// /etc/cni/net.d, /run/bgplb and /sys/fs/bpf are the node's own, with BinDir (bgplbctl
// of the image under test) first on PATH. It is the lab's answer to the conformance
// suite's node adapter (`bgplb-lab fault node-exec NODE ARGV...`). Lab-kubelet nodes
// have no mount namespace of their own, so NodeExec refuses them.
func (l *Lab) NodeExec(ctx context.Context, node string, stdin io.Reader, stdout, stderr io.Writer, argv ...string) error {
	if l.Opts.Runtime != RuntimeContainerd {
		return fmt.Errorf("node-exec: lab nodes run no mount namespace of their own; only real nodes (--runtime %s) have one", RuntimeContainerd)
	}
	if len(argv) == 0 {
		return fmt.Errorf("node-exec on %s: no command", node)
	}
	n, ok := l.Node(node)
	if !ok {
		return fmt.Errorf("node-exec: no lab node %q", node)
	}
	bin, err := filepath.Abs(l.Opts.BinDir)
	if err != nil {
		return fmt.Errorf("node-exec: resolve bin dir %q: %w", l.Opts.BinDir, err)
	}
	env := []string{"env", "PATH=" + bin + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "NODE_NAME=" + n.Name}
	full, err := l.nodeCommand(n, append(env, argv...)...)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, full[0], full[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("node-exec on %s: %q: %w", node, argv, err)
	}
	return nil
}
