package labsuite

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bgplb/bgplb/conformance/lab"
)

// BIRD is one process (BGP, kernel and device protocols together), so the lab's
// RouterFaults for BIRD kill and start the whole daemon: the routes it installed stay
// in the router's kernel while it is gone (BIRD removes nothing when killed), like
// zebra keeping the FIB when FRR's bgpd dies, and the restarted BIRD replaces them.

// birdFiles returns the lab BIRD's config, control socket and PID file.
func birdFiles(l *lab.Lab) (conf, sock, pidFile string) {
	dir := filepath.Join(l.Dir, "bird")
	return filepath.Join(dir, "bird.conf"), filepath.Join(dir, "bird.ctl"), filepath.Join(dir, "bird.pid")
}

// birdPID returns the PID in BIRD's PID file when that process is a running bird.
func birdPID(l *lab.Lab) (int, bool) {
	_, _, pidFile := birdFiles(l)
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || strings.TrimSpace(string(comm)) != "bird" {
		return 0, false
	}
	return pid, true
}

// killBIRD SIGKILLs the lab's BIRD (the PID of its PID file, nothing else) and waits
// until it is gone.
func killBIRD(ctx context.Context, l *lab.Lab) error {
	pid, ok := birdPID(l)
	if !ok {
		return fmt.Errorf("the lab's BIRD is not running")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill BIRD (pid %d): %w", pid, err)
	}
	for {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for BIRD (pid %d) to exit: %w", pid, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// startBIRD starts the lab's BIRD again in the router namespace with its config, as a
// daemon (it forks once its control socket is up); the lab's teardown stops every
// process left in its namespaces.
func startBIRD(ctx context.Context, l *lab.Lab) error {
	if _, ok := birdPID(l); ok {
		return nil
	}
	conf, sock, pidFile := birdFiles(l)
	// Its output goes to a file, not a pipe: the daemon keeps no pipe of ours open.
	logPath := filepath.Join(l.Dir, "bird", "bird-restarted.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", logPath, err)
	}
	defer logf.Close()
	argv := lab.NetNS(lab.RouterNS).Command("bird", "-c", conf, "-s", sock, "-P", pidFile)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("start BIRD (log %s): %w", logPath, err)
	}
	return nil
}
