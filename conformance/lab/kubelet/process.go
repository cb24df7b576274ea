package kubelet

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
)

// defaultPort is what the pod process serves when the pod declares no TCP port;
// the kubelet probes its /ready.
const defaultPort = 8080

// processSpec is everything needed to start one pod's podserver.
type processSpec struct {
	Podserver string
	Netns     string // empty: run in the kubelet's own namespace (hostNetwork pods)
	Name      string // reported as the hostname
	TCP, UDP  []int
	Env       []string
	LogPath   string
}

// specForPod derives the podserver invocation from the pod: every containerPort
// of every container with its protocol (SCTP is not served), TCP 8080 when no
// TCP port is declared, literal env values of the containers (later wins).
func specForPod(pod *corev1.Pod, podserver, netns, logPath string) processSpec {
	s := processSpec{Podserver: podserver, Netns: netns, Name: pod.Name, LogPath: logPath}
	seen := map[string]bool{}
	env := map[string]string{}
	var envOrder []string
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			proto := p.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			key := string(proto) + "/" + strconv.Itoa(int(p.ContainerPort))
			if seen[key] || p.ContainerPort <= 0 {
				continue
			}
			seen[key] = true
			switch proto {
			case corev1.ProtocolTCP:
				s.TCP = append(s.TCP, int(p.ContainerPort))
			case corev1.ProtocolUDP:
				s.UDP = append(s.UDP, int(p.ContainerPort))
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil {
				continue
			}
			if _, ok := env[e.Name]; !ok {
				envOrder = append(envOrder, e.Name)
			}
			env[e.Name] = e.Value
		}
	}
	if len(s.TCP) == 0 {
		s.TCP = []int{defaultPort}
	}
	s.Env = []string{"PATH=" + os.Getenv("PATH"), "HOSTNAME=" + pod.Name}
	for _, k := range envOrder {
		s.Env = append(s.Env, k+"="+env[k])
	}
	return s
}

func joinPorts(ports []int) string {
	parts := make([]string, len(ports))
	for i, p := range ports {
		parts[i] = strconv.Itoa(p)
	}
	return strings.Join(parts, ",")
}

// argv is the full command line: `ip netns exec <ns> podserver ...` (ip execs
// the server in place, so the PID is the server's).
func (s processSpec) argv() []string {
	args := []string{s.Podserver, "--name", s.Name, "--tcp", joinPorts(s.TCP)}
	if len(s.UDP) > 0 {
		args = append(args, "--udp", joinPorts(s.UDP))
	}
	if s.Netns == "" {
		return args
	}
	return append([]string{"ip", "netns", "exec", s.Netns}, args...)
}

// process is a running (or finished) podserver.
type process struct {
	pid int
	// exited is closed when a child this kubelet started has been reaped; nil
	// for an adopted process, which is checked through /proc instead.
	exited    chan struct{}
	podserver string
	name      string
}

// startProcess starts the podserver detached (own session, so stopping the
// kubelet does not stop pods) with output appended to spec.LogPath.
func startProcess(spec processSpec) (*process, error) {
	logf, err := os.OpenFile(spec.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open process log: %w", err)
	}
	defer logf.Close() // the child has its own copy
	argv := spec.argv()
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, fmt.Errorf("find %s: %w", argv[0], err)
	}
	cmd := &exec.Cmd{
		Path:        path,
		Args:        argv,
		Env:         spec.Env,
		Dir:         "/",
		Stdout:      logf,
		Stderr:      logf,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	fmt.Fprintf(logf, "--- %s starting: %s\n", time.Now().UTC().Format(time.RFC3339Nano), strings.Join(argv, " "))
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", strings.Join(argv, " "), err)
	}
	p := &process{pid: cmd.Process.Pid, exited: make(chan struct{}), podserver: spec.Podserver, name: spec.Name}
	go func() {
		_ = cmd.Wait() // reaps the child; how it ended shows in its log
		close(p.exited)
	}()
	return p, nil
}

// adoptProcess returns the process recorded as pid when it is still the pod's
// podserver (same binary and --name on its command line, not a zombie).
func adoptProcess(pid int, podserver, name string) (*process, bool) {
	p := &process{pid: pid, podserver: podserver, name: name}
	return p, p.alive()
}

// alive reports whether the process still runs.
func (p *process) alive() bool {
	if p == nil {
		return false
	}
	if p.exited != nil {
		select {
		case <-p.exited:
			return false
		default:
			return true
		}
	}
	return procMatches(p.pid, p.podserver, p.name)
}

// procMatches checks /proc/<pid>: running (not a zombie) and its command line is
// `<podserver> --name <name> ...` (ip netns exec replaced itself with it).
func procMatches(pid int, podserver, name string) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// Format: pid (comm) state ...; comm may contain spaces and parentheses.
	if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X' {
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if len(args) < 3 || filepath.Base(args[0]) != filepath.Base(podserver) {
		return false
	}
	for i := 1; i+1 < len(args); i++ {
		if args[i] == "--name" && args[i+1] == name {
			return true
		}
	}
	return false
}

// signal sends sig; a process that is already gone is not an error.
func (p *process) signal(sig syscall.Signal) error {
	if !p.alive() {
		return nil
	}
	if err := unix.Kill(p.pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("send %s to pid %d: %w", sig, p.pid, err)
	}
	return nil
}

// waitExit waits up to timeout for the process to end and reports whether it did.
func (p *process) waitExit(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for p.alive() {
		if time.Now().After(deadline) {
			return false
		}
		if p.exited != nil {
			select {
			case <-p.exited:
				return true
			case <-time.After(time.Until(deadline)):
				return false
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// kill sends SIGKILL and waits briefly for the process to go.
func (p *process) kill() error {
	if err := p.signal(syscall.SIGKILL); err != nil {
		return err
	}
	if !p.waitExit(5 * time.Second) {
		return fmt.Errorf("pid %d survived SIGKILL for 5s", p.pid)
	}
	return nil
}
