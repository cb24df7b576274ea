package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// errNoBGPD is returned by the bgpd controls of a lab whose router is not FRR.
var errNoBGPD = errors.New("the lab router is not FRR: no bgpd to stop or start")

// StopRouterBGP sends sig to the lab router's bgpd (the PID recorded in
// <dir>/pids/bgpd.pid, nothing else) and waits until it exited (SIGKILL after 10 s).
// Its sessions with the nodes drop; zebra and the rest of the lab keep running.
func (l *Lab) StopRouterBGP(ctx context.Context, sig syscall.Signal) error {
	if l.Opts.Router != RouterFRR {
		return errNoBGPD
	}
	p, alive, err := l.recordedProcess("bgpd")
	if err != nil || !alive {
		return err
	}
	if err := syscall.Kill(p.PID, sig); err != nil {
		return fmt.Errorf("signal bgpd (pid %d): %w", p.PID, err)
	}
	deadline := time.Now().Add(10 * time.Second)
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
	return nil
}

// StartRouterBGP starts the lab router's bgpd as Up does (same argv and config) unless
// it runs.
func (l *Lab) StartRouterBGP(ctx context.Context) error {
	if l.Opts.Router != RouterFRR {
		return errNoBGPD
	}
	if _, alive, err := l.recordedProcess("bgpd"); err != nil {
		return err
	} else if alive {
		return nil
	}
	_, err := startDetached(l.Dir, "bgpd", RouterNS, frrArgs("bgpd", filepath.Join(l.Dir, "frr")), nil)
	return err
}

// recordedProcess returns the process recorded as <dir>/pids/<name>.pid.
func (l *Lab) recordedProcess(name string) (labProcess, bool, error) {
	procs, err := recordedProcesses(filepath.Join(l.Dir, "pids"))
	if err != nil {
		return labProcess{}, false, err
	}
	for _, p := range procs {
		if p.Name == name {
			return p, p.alive(), nil
		}
	}
	return labProcess{}, false, nil
}

// apiServerPaused reports whether PauseAPIServer has stopped kube-apiserver (its process
// state is T, stopped by a signal).
func (l *Lab) apiServerPaused() (bool, error) {
	p, alive, err := l.recordedProcess("kube-apiserver")
	if err != nil || !alive {
		return false, err
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.PID))
	if err != nil {
		return false, fmt.Errorf("read kube-apiserver's state: %w", err)
	}
	// pid (comm) state …: comm may hold spaces, the state follows its last ')'.
	_, rest, ok := strings.Cut(string(stat[bytes.LastIndexByte(stat, ')')+1:]), " ")
	return ok && strings.HasPrefix(rest, "T"), nil
}

// PauseRouterBGP freezes (SIGSTOP, pause true) or resumes (SIGCONT) the lab router's
// bgpd. A frozen bgpd keeps its TCP sessions open but sends nothing, like a hung router
// or a path that silently drops traffic: the nodes notice only when their hold timers
// expire.
func (l *Lab) PauseRouterBGP(pause bool) error {
	if l.Opts.Router != RouterFRR {
		return errNoBGPD
	}
	p, alive, err := l.recordedProcess("bgpd")
	if err != nil {
		return err
	}
	if !alive {
		return errors.New("bgpd is not running")
	}
	sig := syscall.SIGCONT
	if pause {
		sig = syscall.SIGSTOP
	}
	if err := syscall.Kill(p.PID, sig); err != nil {
		return fmt.Errorf("signal bgpd (pid %d): %w", p.PID, err)
	}
	return nil
}

// PauseAPIServer freezes (SIGSTOP, pause true) or resumes (SIGCONT) the lab's
// kube-apiserver (the recorded PID only): every client's requests and watches hang
// until it resumes, like an unreachable control plane.
func (l *Lab) PauseAPIServer(pause bool) error {
	p, alive, err := l.recordedProcess("kube-apiserver")
	if err != nil {
		return err
	}
	if !alive {
		return errors.New("kube-apiserver is not running")
	}
	sig := syscall.SIGCONT
	if pause {
		sig = syscall.SIGSTOP
	}
	if err := syscall.Kill(p.PID, sig); err != nil {
		return fmt.Errorf("signal kube-apiserver (pid %d): %w", p.PID, err)
	}
	return nil
}
