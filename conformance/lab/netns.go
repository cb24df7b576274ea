package lab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"
)

// netnsRunDir is where `ip netns` keeps named namespaces.
const netnsRunDir = "/run/netns"

// NetNS is a named network namespace (a file in /run/netns).
type NetNS string

// Path is the namespace's bind-mount path.
func (n NetNS) Path() string { return filepath.Join(netnsRunDir, string(n)) }

// Do runs fn on a locked OS thread switched into the namespace (pkg/ns.WithNetNSPath:
// a goroutine of its own whose thread is discarded if switching back fails). Sockets
// created inside fn stay in the namespace. fn must not start goroutines that expect to
// be in the namespace.
func (n NetNS) Do(fn func() error) error {
	if err := ns.WithNetNSPath(n.Path(), func(ns.NetNS) error { return fn() }); err != nil {
		return fmt.Errorf("in netns %s: %w", n, err)
	}
	return nil
}

// Dialer returns a DialContext function whose sockets are created inside the namespace.
// Addresses must be IP literals (no name resolution happens inside the namespace).
func (n NetNS) Dialer(timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		err := n.Do(func() error {
			d := net.Dialer{Timeout: timeout}
			c, err := d.DialContext(ctx, network, addr)
			conn = c
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("dial %s %s from netns %s: %w", network, addr, n, err)
		}
		return conn, nil
	}
}

// HTTPClient returns an http.Client whose connections start inside the namespace.
// Keep-alives are off so every request opens a new connection (a new flow).
func (n NetNS) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:       n.Dialer(timeout),
			DisableKeepAlives: true,
			Proxy:             nil,
		},
	}
}

// Command returns the argv that runs argv inside the network namespace only:
// `nsenter --net=/run/netns/NAME argv...`. nsenter execs argv in place (the PID is
// argv's own) and, unlike `ip netns exec`, keeps the caller's mount namespace, so
// /sys/fs/bpf (bpffs pins) and the root /run/netns stay visible; /sys/class/net is the
// root namespace's view, which nothing in the lab reads.
func (n NetNS) Command(argv ...string) []string {
	return append([]string{"nsenter", "--net=" + n.Path(), "--"}, argv...)
}

// Exec runs argv inside the namespace (see Command) and returns its combined output.
func (n NetNS) Exec(ctx context.Context, argv ...string) ([]byte, error) {
	return run(ctx, n.Command(argv...)...)
}

// Exists reports whether the named namespace exists.
func (n NetNS) Exists() bool {
	_, err := os.Stat(n.Path())
	return err == nil
}

// run executes argv and returns its combined output; a failure names the command and
// includes its output.
func run(ctx context.Context, argv ...string) ([]byte, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("run %s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(out.String()))
	}
	return out.Bytes(), nil
}

// ipCmds runs a list of `ip` argument lists in order, stopping at the first failure.
func ipCmds(ctx context.Context, cmds ...[]string) error {
	for _, c := range cmds {
		if _, err := run(ctx, append([]string{"ip"}, c...)...); err != nil {
			return err
		}
	}
	return nil
}

var labNetnsRE = regexp.MustCompile("^" + regexp.QuoteMeta(Prefix) + `-(router|client|fabclient|cp|node[0-9]+|pod-.+)$`)

// IsLabNetns reports whether name is one of the namespaces the lab creates
// (bgplb-router, bgplb-client, bgplb-cp, bgplb-nodeN, bgplb-pod-*).
func IsLabNetns(name string) bool { return labNetnsRE.MatchString(name) }

// LabNetns lists the existing lab namespaces.
func LabNetns() ([]NetNS, error) {
	entries, err := os.ReadDir(netnsRunDir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("list %s: %w", netnsRunDir, err)
	}
	var out []NetNS
	for _, e := range entries {
		if IsLabNetns(e.Name()) {
			out = append(out, NetNS(e.Name()))
		}
	}
	return out, nil
}

// netnsInode returns the inode identifying the namespace behind path.
func netnsInode(path string) (uint64, bool) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, false
	}
	return st.Ino, true
}

// pidsInNetns returns the PIDs of processes whose network namespace is one of inodes.
func pidsInNetns(inodes map[uint64]bool) []int {
	if len(inodes) == 0 {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == self {
			continue
		}
		if ino, ok := netnsInode(fmt.Sprintf("/proc/%d/ns/net", pid)); ok && inodes[ino] && running(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}
