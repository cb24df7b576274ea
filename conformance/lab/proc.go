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
// executable on the second and the process's start time (field 22 of /proc/PID/stat,
// clock ticks since boot) on the third. Files written by other lab components (the lab
// kubelet) may hold only the PID and the executable.

// startDetached starts argv in its own session with stdout and stderr appended to
// <dir>/logs/<name>.log and records its PID in <dir>/pids/<name>.pid. When netns is not
// empty the command runs inside that network namespace (see NetNS.Command).
func startDetached(dir, name, netns string, argv []string, env []string) (int, error) {
	full := argv
	if netns != "" {
		full = NetNS(netns).Command(argv...)
	}
	return startDetachedArgv(dir, name, full, argv[0], env)
}

// startDetachedArgv is startDetached with the full command line given (full, which
// ends by exec-ing exe: nsenter, unshare…) and exe recorded as the executable.
func startDetachedArgv(dir, name string, full []string, exe string, env []string) (int, error) {
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
	cmd := exec.Command(full[0], full[1:]...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s (%s): %w", name, exe, err)
	}
	pid := cmd.Process.Pid
	if p, err := exec.LookPath(exe); err == nil {
		exe = p
	}
	if abs, err := filepath.Abs(exe); err == nil {
		exe = abs
	}
	content := fmt.Sprintf("%d\n%s\n", pid, exe)
	if ticks, ok := startTicks(pid); ok {
		content += ticks + "\n"
	}
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
	Name  string // pid file path relative to the lab dir, without ".pid"
	PID   int
	Exe   string // expected executable, may be empty
	Start string // expected start time in clock ticks since boot, may be empty
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
		if len(lines) > 2 {
			p.Start = strings.TrimSpace(lines[2])
		}
		if rel, err := filepath.Rel(dir, path); err == nil {
			p.Name = strings.TrimSuffix(rel, ".pid")
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
// not a zombie, with the recorded start time when the file has one (a reused PID has
// another), and running the recorded executable when the file names one.
func (p labProcess) alive() bool {
	fields, ok := procStat(p.PID)
	if !ok || fields[0] == "Z" || fields[0] == "X" {
		return false
	}
	if p.Start != "" && fields[19] != p.Start {
		return false // PID reused
	}
	if p.Exe != "" {
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.PID))
		if err == nil && strings.TrimSuffix(exe, " (deleted)") != p.Exe {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.PID)) // gone: no match
			argv0, _, _ := strings.Cut(string(cmdline), "\x00")
			if argv0 != p.Exe && filepath.Base(argv0) != filepath.Base(p.Exe) {
				return false
			}
		}
	}
	return true
}

// procStat returns the fields of /proc/PID/stat after the command name: state first,
// starttime at index 19.
func procStat(pid int) ([]string, bool) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, false
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return nil, false
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 20 {
		return nil, false
	}
	return fields, true
}

// startTicks returns the start time of pid (clock ticks since boot) as written in
// /proc/PID/stat. It survives exec and never changes, unlike wall-clock times.
func startTicks(pid int) (string, bool) {
	fields, ok := procStat(pid)
	if !ok {
		return "", false
	}
	return fields[19], true
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
