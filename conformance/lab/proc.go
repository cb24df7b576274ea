package lab

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A pid file holds the PID on its first line and, optionally, the absolute path of the
// executable on the second. Files written by other lab components (the lab kubelet) may
// hold only the PID.

// startDetached starts argv in its own session with stdout and stderr appended to
// <dir>/logs/<name>.log and records its PID in <dir>/pids/<name>.pid. When netns is not
// empty the command runs inside that network namespace (see NetNS.Command).
func startDetached(dir, name, netns string, argv []string, env []string) (int, error) {
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return 0, fmt.Errorf("create log dir: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "pids"), 0o755); err != nil {
		return 0, fmt.Errorf("create pid dir: %w", err)
	}
	logf, err := os.OpenFile(filepath.Join(dir, "logs", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("open log of %s: %w", name, err)
	}
	defer logf.Close()
	full := argv
	if netns != "" {
		full = NetNS(netns).Command(argv...)
	}
	cmd := exec.Command(full[0], full[1:]...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s (%s): %w", name, argv[0], err)
	}
	pid := cmd.Process.Pid
	exe, err := exec.LookPath(argv[0])
	if err != nil {
		exe = argv[0]
	}
	if abs, err := filepath.Abs(exe); err == nil {
		exe = abs
	}
	content := fmt.Sprintf("%d\n%s\n", pid, exe)
	if err := os.WriteFile(filepath.Join(dir, "pids", name+".pid"), []byte(content), 0o644); err != nil {
		_ = cmd.Process.Kill() // best effort: we cannot track it, so do not leave it running
		return 0, fmt.Errorf("write pid file of %s: %w", name, err)
	}
	// Reap it in the background when it exits while we are still running (tests).
	go func() { _ = cmd.Wait() }()
	return pid, nil
}

// labProcess is one PID recorded under the lab dir.
type labProcess struct {
	Name    string // pid file path relative to the lab dir, without ".pid"
	PID     int
	Exe     string // expected executable, may be empty
	written time.Time
}

// recordedProcesses returns every *.pid file under dir.
func recordedProcesses(dir string) ([]labProcess, error) {
	var out []labProcess
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".pid") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil // vanished or unreadable: nothing to kill
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		pid, err := strconv.Atoi(strings.TrimSpace(lines[0]))
		if err != nil || pid <= 1 {
			return nil
		}
		p := labProcess{PID: pid}
		if len(lines) > 1 {
			p.Exe = strings.TrimSpace(lines[1])
		}
		if rel, err := filepath.Rel(dir, path); err == nil {
			p.Name = strings.TrimSuffix(rel, ".pid")
		}
		if info, err := d.Info(); err == nil {
			p.written = info.ModTime()
		}
		out = append(out, p)
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return out, fmt.Errorf("walk lab dir %s: %w", dir, err)
	}
	return out, nil
}

// alive reports whether the recorded process still runs and is still the one recorded:
// not a zombie, started no later than its pid file was written, and, when the file
// names an executable, running that executable.
func (p labProcess) alive() bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.PID))
	if err != nil {
		return false
	}
	// Fields after the ")" closing the command name: state is the first, starttime the 20th.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return false
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 20 || fields[0] == "Z" || fields[0] == "X" {
		return false
	}
	if !p.written.IsZero() {
		if started, ok := processStart(fields[19]); ok && started.After(p.written.Add(2*time.Second)) {
			return false // PID reused after the file was written
		}
	}
	if p.Exe != "" {
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.PID))
		if err == nil && strings.TrimSuffix(exe, " (deleted)") != p.Exe {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.PID))
			argv0, _, _ := strings.Cut(string(cmdline), "\x00")
			if argv0 != p.Exe && filepath.Base(argv0) != filepath.Base(p.Exe) {
				return false
			}
		}
	}
	return true
}

// processStart converts /proc/PID/stat's starttime (clock ticks since boot) to a time.
func processStart(ticks string) (time.Time, bool) {
	t, err := strconv.ParseUint(ticks, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	up, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return time.Time{}, false
	}
	f := strings.Fields(string(up))
	if len(f) == 0 {
		return time.Time{}, false
	}
	upSec, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return time.Time{}, false
	}
	const clkTck = 100 // USER_HZ on Linux
	boot := time.Now().Add(-time.Duration(upSec * float64(time.Second)))
	return boot.Add(time.Duration(t) * time.Second / clkTck), true
}

// terminate sends SIGTERM to every pid (and to its process group when it leads one),
// waits up to grace for them to exit and then sends SIGKILL to the rest.
func terminate(pids []int, grace time.Duration) {
	if len(pids) == 0 {
		return
	}
	signal := func(sig syscall.Signal) {
		for _, pid := range pids {
			if pgid, err := syscall.Getpgid(pid); err == nil && pgid == pid {
				_ = syscall.Kill(-pid, sig) // best effort: the group may be gone
			}
			_ = syscall.Kill(pid, sig) // best effort: the process may be gone
		}
	}
	signal(syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !anyAlive(pids) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	signal(syscall.SIGKILL)
	deadline = time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && anyAlive(pids) {
		time.Sleep(50 * time.Millisecond)
	}
}

func anyAlive(pids []int) bool {
	for _, pid := range pids {
		if running(pid) {
			return true
		}
	}
	return false
}

// running reports whether pid exists and is not a zombie.
func running(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+3 > len(stat) {
		return false
	}
	state := stat[i+2]
	return state != 'Z' && state != 'X'
}
