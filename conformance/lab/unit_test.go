package lab

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

func TestMakeNodeAddressPlan(t *testing.T) {
	n := makeNode("/run/x", 2, true)
	want := Node{
		Name: "node2", Index: 2, Netns: "bgplb-node2", Dir: "/run/x/node2",
		IPs:      []netip.Addr{netip.MustParseAddr("198.18.0.12"), netip.MustParseAddr("2001:db8:f::12")},
		PodCIDRs: []netip.Prefix{netip.MustParsePrefix("198.19.2.0/24"), netip.MustParsePrefix("2001:db8:1:2::/64")},
	}
	if n.Name != want.Name || n.Netns != want.Netns || n.Dir != want.Dir ||
		n.IPs[0] != want.IPs[0] || n.IPs[1] != want.IPs[1] || n.PodCIDRs[0] != want.PodCIDRs[0] || n.PodCIDRs[1] != want.PodCIDRs[1] {
		t.Fatalf("makeNode = %+v, want %+v", n, want)
	}
	if v4 := makeNode("/run/x", 1, false); len(v4.IPs) != 1 || len(v4.PodCIDRs) != 1 {
		t.Fatalf("IPv4-only node has %v %v", v4.IPs, v4.PodCIDRs)
	}
	for _, p := range []string{n.CNIConfDir(), n.CNIBinDir(), n.CNICacheDir(), n.IPAMDir(), n.KubeletStateDir(), n.DaemonSocket(), n.EndpointsDir()} {
		if filepath.Dir(p) == "/" || !filepath.IsAbs(p) || p[:len(n.Dir)] != n.Dir {
			t.Errorf("per-node path %s is not under %s", p, n.Dir)
		}
	}
	if n.BPFPinDir() != "/sys/fs/bpf/bgplb-lab/node2" {
		t.Errorf("BPFPinDir = %s", n.BPFPinDir())
	}
}

func TestIsLabNetns(t *testing.T) {
	for name, want := range map[string]bool{
		"bgplb-router": true, "bgplb-client": true, "bgplb-cp": true, "bgplb-node1": true, "bgplb-node12": true,
		"bgplb-pod-node1-abc": true, "bgplb-nodex": false, "bgplb-bpft-1": false, "bgplb-": false, "router": false,
		"xbgplb-router": false, "bgplb-router2": false,
	} {
		if got := IsLabNetns(name); got != want {
			t.Errorf("IsLabNetns(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestOptionsDefaultsAndValidation(t *testing.T) {
	o := Options{BinDir: "/b", K8sBinDir: "/k"}
	if err := o.defaults(); err != nil {
		t.Fatal(err)
	}
	if o.Dir != DefaultDir || o.Nodes != 3 || o.ProxyMode != "nftables" || o.Logf == nil {
		t.Errorf("defaults: %+v", o)
	}
	for _, bad := range []Options{{Nodes: -1}, {Nodes: maxNodes + 1}, {ProxyMode: "ipvs"}, {ExportPodCIDR: true, NoDaemon: true}} {
		bad.BinDir, bad.K8sBinDir = "/b", "/k"
		if err := bad.defaults(); err == nil {
			t.Errorf("defaults accepted %+v", bad)
		}
	}
	n := Node{Name: "node1"}
	for _, export := range []bool{false, true} {
		l := &Lab{Dir: "/run/x", Opts: Options{ExportPodCIDR: export, DaemonExtraArgs: []string{"--datapath=false"}}}
		args := l.daemonArgs(n)
		if got := slices.Contains(args, "--export-pod-cidr"); got != export {
			t.Errorf("ExportPodCIDR=%v: daemon args %v", export, args)
		}
		if args[len(args)-1] != "--datapath=false" {
			t.Errorf("extra args not last: %v", args)
		}
	}
}

// TestRecordedProcesses checks pid-file parsing and the liveness rules: a live process
// with a matching executable is alive; a mismatching executable, a PID file written
// before the process started (PID reuse) and an exited process are not.
func TestRecordedProcesses(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sleepExe, _ := exec.LookPath("sleep")
	pid := strconv.Itoa(cmd.Process.Pid)
	write := func(rel, content string) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ticks, ok := startTicks(cmd.Process.Pid)
	if !ok {
		t.Fatal("no start time for the sleep process")
	}
	write("pids/good.pid", pid+"\n"+sleepExe+"\n"+ticks+"\n")
	write("node1/kubelet/pods/x.pid", pid+"\n") // PID only (other writers)
	write("node1/kubelet/pods/y.pid", pid+"\n"+sleepExe+"\n")
	write("pids/wrongexe.pid", pid+"\n/usr/bin/definitely-not-sleep\n")
	write("pids/reused.pid", pid+"\n"+sleepExe+"\n1\n") // started at tick 1: another process
	write("pids/garbage.pid", "not a pid\n")
	write("pids/notapidfile.txt", pid+"\n")

	procs, err := recordedProcesses(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, p := range procs {
		got[p.Name] = p.alive()
	}
	want := map[string]bool{"pids/good": true, "node1/kubelet/pods/x": true, "node1/kubelet/pods/y": true,
		"pids/wrongexe": false, "pids/reused": false}
	if len(got) != len(want) {
		t.Fatalf("recorded %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s alive = %v, want %v", k, got[k], v)
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	for _, p := range procs {
		if p.alive() {
			t.Errorf("%s alive after its process exited", p.Name)
		}
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/run/a\040b\134c`); got != `/run/a b\c` {
		t.Errorf("unescapeMount = %q", got)
	}
}
