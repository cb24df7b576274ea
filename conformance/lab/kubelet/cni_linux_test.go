package kubelet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
	"golang.org/x/sys/unix"

	"github.com/bgplb/bgplb/internal/poll"
)

// netnsExec runs CNI plugins inside a network namespace with `ip netns exec`,
// standing in for the lab node namespace the kubelet itself runs in.
type netnsExec struct {
	version.PluginDecoder
	netns string
}

func (e *netnsExec) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", e.netns, pluginPath)
	cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = environ, bytes.NewReader(stdin), &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var cniErr types.Error
		if json.Unmarshal(stdout.Bytes(), &cniErr) == nil && cniErr.Msg != "" {
			return nil, &cniErr
		}
		return nil, fmt.Errorf("run %s: %w: %s", pluginPath, err, stderr.String())
	}
	return stdout.Bytes(), nil
}

func (e *netnsExec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and runs CNI plugins")
	}
}

// ipJSON runs `ip -j args` and decodes the output.
func ipJSON(t *testing.T, args ...string) []map[string]any {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-j"}, args...)...).Output()
	if err != nil {
		t.Fatalf("ip -j %s: %v", strings.Join(args, " "), err)
	}
	var v []map[string]any
	if len(bytes.TrimSpace(out)) == 0 {
		return nil
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("decode ip -j %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return v
}

func hasRouteTo(t *testing.T, netns string, ip netip.Addr) bool {
	for _, r := range ipJSON(t, "-n", netns, "route", "show") {
		if r["dst"] == ip.String() {
			return true
		}
	}
	return false
}

func vethCount(t *testing.T, netns string) int {
	return len(ipJSON(t, "-n", netns, "link", "show", "type", "veth"))
}

func nsInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return st.Ino
}

// TestCNIPathInNamespaces runs the kubelet's pod network path for real: a node
// namespace stands for the lab node, the reference ptp + host-local plugins
// (built from the version in go.mod) are invoked through libcni, the pod
// process is started in the pod namespace, and everything is released again.
func TestCNIPathInNamespaces(t *testing.T) {
	requireRoot(t)
	tmp := t.TempDir()
	binDir, confDir, cacheDir, ipamDir := filepath.Join(tmp, "bin"), filepath.Join(tmp, "net.d"), filepath.Join(tmp, "cache"), filepath.Join(tmp, "ipam")
	for _, d := range []string{binDir, confDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"ptp", "host-local"} {
		pkg := "github.com/containernetworking/plugins/plugins/main/" + p
		if p == "host-local" {
			pkg = "github.com/containernetworking/plugins/plugins/ipam/host-local"
		}
		if out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, p), pkg).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", p, err, out)
		}
	}
	conflist := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "bgplb-kubelet-test",
  "plugins": [{
    "type": "ptp",
    "ipMasq": false,
    "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": "198.19.99.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}
  }]
}`, ipamDir)
	if err := os.WriteFile(filepath.Join(confDir, "10-test.conflist"), []byte(conflist), 0o644); err != nil {
		t.Fatal(err)
	}
	// A second, later-sorting conflist must be ignored.
	if err := os.WriteFile(filepath.Join(confDir, "20-ignored.conflist"), []byte(`{"cniVersion":"1.0.0","name":"ignored","plugins":[{"type":"nonexistent"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}

	suffix := fmt.Sprintf("%d", os.Getpid()%100000)
	nodeNS, podNS := "bgplb-kt-node-"+suffix, "bgplb-kt-pod-"+suffix
	ctx := context.Background()
	own, err := os.Open("/proc/self/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { own.Close() })
	// The pod namespace goes through the nsenter path (into our own mount
	// namespace), the node namespace through the direct one.
	viaNsenter := &netnsManager{hostMountNS: own}
	direct := &netnsManager{}
	t.Cleanup(func() {
		for _, ns := range []string{podNS, nodeNS} {
			if err := direct.remove(context.Background(), ns); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	if err := direct.ensure(ctx, nodeNS); err != nil {
		t.Fatal(err)
	}
	if err := viaNsenter.ensure(ctx, podNS); err != nil {
		t.Fatal(err)
	}
	if err := viaNsenter.ensure(ctx, podNS); err != nil {
		t.Fatalf("ensure is not idempotent: %v", err)
	}
	links := ipJSON(t, "-n", podNS, "link", "show", "lo")
	if len(links) != 1 || !strings.Contains(fmt.Sprint(links[0]["flags"]), "UP") {
		t.Fatalf("lo in pod namespace = %v, want UP", links)
	}

	nw := newNetwork(binDir, confDir, cacheDir, &netnsExec{netns: nodeNS})
	uid := "5f0c2e9a-8b7d-4e6f-a1b2-c3d4e5f60718"
	rec := podRecord{UID: "5f0c2e9a-8b7d-4e6f-a1b2-c3d4e5f60718", Namespace: "default", Name: "cni-pod",
		ContainerID: containerIDFor("5f0c2e9a-8b7d-4e6f-a1b2-c3d4e5f60718"), Netns: podNS}
	released := false
	t.Cleanup(func() {
		if !released {
			_ = nw.del(context.Background(), rec.attachment()) // best effort after a failure
		}
	})
	ips, err := nw.add(ctx, rec.attachment())
	if err != nil {
		t.Fatalf("CNI ADD: %v", err)
	}
	if len(ips) != 1 || !netip.MustParsePrefix("198.19.99.0/24").Contains(ips[0]) {
		t.Fatalf("pod IPs = %v, want one in 198.19.99.0/24", ips)
	}
	podIP := ips[0]
	addrs := ipJSON(t, "-n", podNS, "addr", "show", "dev", "eth0")
	if len(addrs) != 1 || !strings.Contains(fmt.Sprint(addrs[0]["addr_info"]), podIP.String()) {
		t.Fatalf("eth0 in pod namespace = %v, want %s", addrs, podIP)
	}
	if !hasRouteTo(t, nodeNS, podIP) {
		t.Fatalf("node namespace has no route to %s: %v", podIP, ipJSON(t, "-n", nodeNS, "route", "show"))
	}
	if n := vethCount(t, nodeNS); n != 1 {
		t.Fatalf("node namespace veths = %d, want 1", n)
	}
	if _, err := os.Stat(filepath.Join(ipamDir, "bgplb-kubelet-test", podIP.String())); err != nil {
		t.Fatalf("host-local reservation missing: %v", err)
	}
	cached, err := filepath.Glob(filepath.Join(cacheDir, "results", "bgplb-kubelet-test-"+rec.ContainerID+"-eth0"))
	if err != nil || len(cached) != 1 {
		t.Fatalf("libcni cached result = %v %v, want one", cached, err)
	}
	var cachedBody struct {
		CNIArgs [][2]string `json:"cniArgs"`
	}
	if data, err := os.ReadFile(cached[0]); err != nil || json.Unmarshal(data, &cachedBody) != nil {
		t.Fatalf("read cached result: %v", err)
	}
	if !strings.Contains(fmt.Sprint(cachedBody.CNIArgs), "K8S_POD_UID "+uid) {
		t.Errorf("cached CNI args = %v, want K8S_POD_UID", cachedBody.CNIArgs)
	}

	// The pod process runs inside the pod namespace.
	bin := buildPodserver(t)
	proc, err := startProcess(processSpec{Podserver: bin, Netns: podNS, Name: "cni-pod", TCP: []int{8080},
		Env: []string{"PATH=" + os.Getenv("PATH")}, LogPath: filepath.Join(tmp, "pod.log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proc.kill() })
	poll.Eventually(t, 5*time.Second, every, "pod process in the pod namespace", func() bool {
		var st unix.Stat_t
		return unix.Stat(fmt.Sprintf("/proc/%d/ns/net", proc.pid), &st) == nil && st.Ino == nsInode(t, netnsPath(podNS)) && procMatches(proc.pid, bin, "cni-pod")
	})
	if err := proc.kill(); err != nil {
		t.Fatal(err)
	}

	// DEL releases the veth, the route, the IP and the cache; twice is fine.
	if err := nw.del(ctx, rec.attachment()); err != nil {
		t.Fatalf("CNI DEL: %v", err)
	}
	released = true
	if hasRouteTo(t, nodeNS, podIP) {
		t.Error("route to the pod survived DEL")
	}
	if n := vethCount(t, nodeNS); n != 0 {
		t.Errorf("node namespace veths after DEL = %d, want 0", n)
	}
	if _, err := os.Stat(filepath.Join(ipamDir, "bgplb-kubelet-test", podIP.String())); !os.IsNotExist(err) {
		t.Errorf("host-local reservation survived DEL (%v)", err)
	}
	if _, err := os.Stat(cached[0]); !os.IsNotExist(err) {
		t.Errorf("libcni cache survived DEL (%v)", err)
	}
	if err := nw.del(ctx, rec.attachment()); err != nil {
		t.Errorf("second CNI DEL: %v", err)
	}
	if err := viaNsenter.remove(ctx, podNS); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(netnsPath(podNS)); !os.IsNotExist(err) {
		t.Errorf("pod namespace survived remove (%v)", err)
	}
	if err := viaNsenter.remove(ctx, podNS); err != nil {
		t.Errorf("second remove: %v", err)
	}
}

// TestCNIAddErrors checks that ADD errors name their cause (the kubelet shows
// them as the ContainerCreating message and retries).
func TestCNIAddErrors(t *testing.T) {
	requireRoot(t)
	tmp := t.TempDir()
	confDir := filepath.Join(tmp, "net.d")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	nw := newNetwork(filepath.Join(tmp, "bin"), confDir, filepath.Join(tmp, "cache"), nil)
	a := podAttachment{ContainerID: "abc", NetnsPath: "/run/netns/does-not-exist", Namespace: "ns", Name: "p", UID: "u"}
	if _, err := nw.add(context.Background(), a); err == nil || !strings.Contains(err.Error(), "no *.conflist") {
		t.Fatalf("ADD without a conflist = %v, want an error naming the missing conflist", err)
	}
	if err := os.WriteFile(filepath.Join(confDir, "10-x.conflist"), []byte(`{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"missing-plugin"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := nw.add(context.Background(), a)
	if err == nil || !strings.Contains(err.Error(), "missing-plugin") {
		t.Fatalf("ADD with a missing plugin = %v, want an error naming it", err)
	}
}

// TestNetnsStaleFile: a namespace file whose mount is gone (left by a kubelet
// whose mount namespace died) is replaced by ensure and removed by remove.
func TestNetnsStaleFile(t *testing.T) {
	requireRoot(t)
	name := fmt.Sprintf("bgplb-kt-stale-%d", os.Getpid()%100000)
	m := &netnsManager{}
	t.Cleanup(func() {
		if err := m.remove(context.Background(), name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	stale := func() {
		t.Helper()
		if err := os.MkdirAll(netnsDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(netnsPath(name), nil, 0o444); err != nil {
			t.Fatal(err)
		}
		if isNetns(netnsPath(name)) {
			t.Fatal("a regular file counts as a namespace")
		}
	}
	stale()
	if err := m.ensure(context.Background(), name); err != nil {
		t.Fatalf("ensure over a stale file: %v", err)
	}
	if !isNetns(netnsPath(name)) {
		t.Fatal("ensure did not make a namespace")
	}
	if err := m.remove(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	stale()
	if err := m.remove(context.Background(), name); err != nil {
		t.Fatalf("remove of a stale file: %v", err)
	}
	if _, err := os.Stat(netnsPath(name)); !os.IsNotExist(err) {
		t.Errorf("stale file survived remove (%v)", err)
	}
}
