package kubelet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// netnsDir is where `ip netns` keeps named network namespaces.
const netnsDir = "/run/netns"

// netnsPath returns the bind-mount path of the named network namespace.
func netnsPath(name string) string { return filepath.Join(netnsDir, name) }

// netnsManager adds and deletes named network namespaces with `ip netns`.
// When hostMountNS is set, the commands run in that mount namespace (see the
// package doc) so the bind mounts are visible outside the kubelet.
type netnsManager struct {
	hostMountNS *os.File // nil: run in our own mount namespace
}

// openParentMountNS returns the parent process's mount namespace when it is
// not ours (the kubelet was started by `ip netns exec`), nil otherwise.
func openParentMountNS(logger klog.Logger) *os.File {
	ppid := os.Getppid()
	own, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		logger.Info("cannot read own mount namespace; pod namespaces are created in it", "err", err)
		return nil
	}
	parentPath := "/proc/" + strconv.Itoa(ppid) + "/ns/mnt"
	parent, err := os.Readlink(parentPath)
	if err != nil {
		logger.Info("cannot read the parent's mount namespace: pod namespaces will be visible only to this kubelet and its children; "+
			"start the kubelet from a process that stays alive in the host mount namespace, or with nsenter --net instead of ip netns exec",
			"ppid", ppid, "err", err)
		return nil
	}
	if parent == own {
		return nil
	}
	f, err := os.Open(parentPath)
	if err != nil {
		logger.Info("cannot open the parent's mount namespace; pod namespaces are created in our own", "ppid", ppid, "err", err)
		return nil
	}
	logger.V(2).Info("pod namespaces are managed from the parent's mount namespace", "ppid", ppid, "mountNS", parent)
	return f
}

// command builds `ip args...`, wrapped in nsenter when a host mount namespace is set.
func (m *netnsManager) command(ctx context.Context, args ...string) *exec.Cmd {
	if m == nil || m.hostMountNS == nil {
		return exec.CommandContext(ctx, "ip", args...)
	}
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--mount=/proc/self/fd/3", "--", "ip"}, args...)...)
	cmd.ExtraFiles = []*os.File{m.hostMountNS}
	return cmd
}

func runCmd(cmd *exec.Cmd) error {
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("run %q: %w: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// isNetns reports whether path is a mounted network namespace in our view.
func isNetns(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// ensure creates the named namespace (unless it exists) and brings lo up.
func (m *netnsManager) ensure(ctx context.Context, name string) error {
	path := netnsPath(name)
	if !isNetns(path) {
		if _, err := os.Stat(path); err == nil {
			// A stale file (a namespace whose mount is gone): ip netns add refuses it.
			if err := m.remove(ctx, name); err != nil {
				return err
			}
		}
		if err := runCmd(m.command(ctx, "netns", "add", name)); err != nil {
			return fmt.Errorf("add network namespace %s: %w", name, err)
		}
		if !isNetns(path) {
			return fmt.Errorf("add network namespace %s: %s is not visible as a namespace in the kubelet's mount namespace", name, path)
		}
	}
	if err := runCmd(exec.CommandContext(ctx, "ip", "-n", name, "link", "set", "lo", "up")); err != nil {
		return fmt.Errorf("bring lo up in %s: %w", name, err)
	}
	return nil
}

// remove deletes the named namespace; a missing one is not an error.
func (m *netnsManager) remove(ctx context.Context, name string) error {
	path := netnsPath(name)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := runCmd(m.command(ctx, "netns", "delete", name)); err != nil {
		if _, statErr := os.Stat(path); errors.Is(statErr, fs.ErrNotExist) {
			return nil // raced with someone else's delete
		}
		return fmt.Errorf("delete network namespace %s: %w", name, err)
	}
	return nil
}
