//go:build lab

package lab_test

// TestLab's subtests: readiness and termination, BGP to the router's FIB, tearing down.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/bgplb/bgplb/conformance/lab"
	"github.com/bgplb/bgplb/internal/poll"
)

func testReadiness(ctx context.Context, t *testing.T, cs kubernetes.Interface, w *workload) {
	p := w.pods[0]
	client := lab.NetNS(lab.ClientNS).HTTPClient(3 * time.Second)
	readyURL := "http://" + net.JoinHostPort(p.Status.PodIP, "8080") + "/ready"
	post := func(v string) {
		resp, err := client.Post(readyURL, "text/plain", strings.NewReader(v))
		if err != nil {
			t.Fatalf("POST %s %s: %v", readyURL, v, err)
		}
		resp.Body.Close()
		// The answer is the new state: 200 "ready" or 503 "not ready".
		if want := map[string]int{"true": http.StatusOK, "false": http.StatusServiceUnavailable}[v]; resp.StatusCode != want {
			t.Fatalf("POST %s %s: %s, want %d", readyURL, v, resp.Status, want)
		}
	}
	endpointReady := func(ip string) (ready, found bool) {
		for _, ep := range endpoints(ctx, cs, w.ns, w.name) {
			if ep.Addresses[0] == ip {
				return ep.Conditions.Ready == nil || *ep.Conditions.Ready, true
			}
		}
		return false, false
	}
	start := time.Now()
	post("false")
	poll.Eventually(t, 5*time.Second, every, "endpoint "+p.Status.PodIP+" ready:false within 5s", func() error {
		if ready, found := endpointReady(p.Status.PodIP); !found || ready {
			return fmt.Errorf("found=%v ready=%v", found, ready)
		}
		return nil
	})
	t.Logf("endpoint turned ready:false %s after POST /ready false", time.Since(start).Round(10*time.Millisecond))
	post("true")
	poll.Eventually(t, 10*time.Second, every, "endpoint "+p.Status.PodIP+" ready again", func() error {
		if ready, found := endpointReady(p.Status.PodIP); !found || !ready {
			return fmt.Errorf("found=%v ready=%v", found, ready)
		}
		return nil
	})

	// Scale down to 2 and watch the removed pod's endpoint go through
	// terminating:true, serving:true before it disappears.
	list, err := cs.DiscoveryV1().EndpointSlices(w.ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + w.name})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	watcher, err := cs.DiscoveryV1().EndpointSlices(w.ns).Watch(wctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + w.name, ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Stop()
	scale, err := cs.AppsV1().Deployments(w.ns).GetScale(ctx, w.name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get scale: %v", err)
	}
	scale.Spec.Replicas = 2
	if _, err := cs.AppsV1().Deployments(w.ns).UpdateScale(ctx, w.name, scale, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("scale to 2: %v", err)
	}
	slices := map[string]*discoveryv1.EndpointSlice{}
	for i := range list.Items {
		slices[list.Items[i].Name] = &list.Items[i]
	}
	terminatingServing := map[string]bool{} // address -> seen terminating:true serving:true
	var gone string
	for gone == "" {
		select {
		case ev, ok := <-watcher.ResultChan():
			if !ok {
				t.Fatalf("watch closed before a terminating endpoint disappeared (seen terminating+serving: %v)", terminatingServing)
			}
			es, isSlice := ev.Object.(*discoveryv1.EndpointSlice)
			if !isSlice {
				continue
			}
			if ev.Type == watch.Deleted {
				delete(slices, es.Name)
			} else {
				slices[es.Name] = es
			}
			present := map[string]bool{}
			for _, s := range slices {
				for _, ep := range s.Endpoints {
					addr := ep.Addresses[0]
					present[addr] = true
					c := ep.Conditions
					if c.Terminating != nil && *c.Terminating && c.Serving != nil && *c.Serving {
						if !terminatingServing[addr] {
							t.Logf("endpoint %s: terminating:true serving:true", addr)
						}
						terminatingServing[addr] = true
					}
				}
			}
			for addr := range terminatingServing {
				if !present[addr] {
					gone = addr
				}
			}
			for _, p := range w.pods {
				if !present[p.Status.PodIP] && !terminatingServing[p.Status.PodIP] {
					t.Fatalf("endpoint %s disappeared without being seen terminating:true serving:true", p.Status.PodIP)
				}
			}
		case <-wctx.Done():
			t.Fatalf("no endpoint went terminating:true serving:true and then disappeared within 60s (seen: %v)", terminatingServing)
		}
	}
	t.Logf("endpoint %s disappeared after terminating:true serving:true", gone)
	poll.Eventually(t, 30*time.Second, every, "2 endpoints left", func() error {
		if n := len(endpoints(ctx, cs, w.ns, w.name)); n != 2 {
			return fmt.Errorf("%d endpoints", n)
		}
		return nil
	})
}

func testBGP(ctx context.Context, t *testing.T, l *lab.Lab, asn uint32) {
	node := l.Nodes[0]
	testBGPFamily(ctx, t, l, asn, "203.0.113.250", node.IPs[0].String(), lab.RouterFabricV4.String())
}

// testBGPFamily runs the speaker helper in node1's namespace, peering with peer and
// announcing prefix (a host route) via nexthop; the route must reach the router's FIB
// and leave it on withdraw.
func testBGPFamily(ctx context.Context, t *testing.T, l *lab.Lab, asn uint32, prefix, nexthop, peer string) {
	node := l.Nodes[0]
	hostLen, ipFlag := "/32", "-4"
	if strings.Contains(prefix, ":") {
		hostLen, ipFlag = "/128", "-6"
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "nsenter", "--net=/run/netns/"+node.Netns, "--", exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=speaker", "HELPER_PREFIX="+prefix, "HELPER_NEXTHOP="+nexthop,
		"HELPER_PEER="+peer, "HELPER_ROUTER_ID="+node.IPs[0].String(), "HELPER_ASN="+strconv.FormatUint(uint64(asn), 10))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start speaker helper: %v", err)
	}
	defer func() {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("speaker helper: %v\n%s", err, out.String())
			}
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Signal(syscall.SIGKILL)
			t.Errorf("speaker helper did not exit\n%s", out.String())
		}
	}()
	router := l.Router()
	family := map[string]string{"-4": "ipv4", "-6": "ipv6"}[ipFlag]
	speaker := node.IPs[0].String()
	if ipFlag == "-6" {
		speaker = nexthop
	}
	poll.Eventually(t, 30*time.Second, every, "BGP session with "+speaker+" Established", func() error {
		peers, err := router.BGPSummary(ctx, family)
		if err != nil {
			return err
		}
		p, ok := peers[speaker]
		if !ok || p.State != "Established" {
			return fmt.Errorf("peer %+v (found %v); helper output: %s", p, ok, out.String())
		}
		return nil
	})
	routeVia := func() (string, error) {
		b, err := exec.CommandContext(ctx, "ip", ipFlag, "-n", lab.RouterNS, "route", "show", prefix+hostLen).CombinedOutput()
		return strings.TrimSpace(string(b)), err
	}
	poll.Eventually(t, 20*time.Second, every, prefix+hostLen+" in the router's FIB via "+nexthop, func() error {
		r, err := routeVia()
		if err != nil {
			return err
		}
		if !strings.Contains(r, "via "+nexthop) || !strings.Contains(r, "proto bgp") {
			return fmt.Errorf("route: %q", r)
		}
		return nil
	})
	var rib struct {
		Paths []struct {
			Nexthops []struct {
				IP string `json:"ip"`
			} `json:"nexthops"`
		} `json:"paths"`
	}
	if err := router.JSON(ctx, "show bgp "+family+" unicast "+prefix+hostLen+" json", &rib); err != nil {
		t.Fatal(err)
	}
	if len(rib.Paths) != 1 || len(rib.Paths[0].Nexthops) == 0 || rib.Paths[0].Nexthops[0].IP != nexthop {
		t.Errorf("router RIB for %s: %+v, want one path via %s", prefix, rib, nexthop)
	}
	if _, err := io.WriteString(stdin, "withdraw\n"); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 20*time.Second, every, prefix+hostLen+" gone from the router's FIB", func() error {
		r, err := routeVia()
		if err != nil {
			return err
		}
		if r != "" {
			return fmt.Errorf("route still there: %q", r)
		}
		return nil
	})
}

// testDown checks acceptance 4; it sets *downed once it has called Down, so the
// cleanup does not tear down twice (a second Down could hit a lab someone else
// started meanwhile: namespace names are global).
func testDown(t *testing.T, l *lab.Lab, downed *bool) {
	procs, err := l.Processes()
	if err != nil {
		t.Fatal(err)
	}
	if len(procs) == 0 {
		t.Fatal("no recorded processes before down")
	}
	// Simulate a crash: kill the kubelet of a node that runs a pod and forget the PIDs
	// of its pods, so down must find their processes through the lab namespaces.
	crashed := ""
	for _, p := range procs {
		if node, _, ok := strings.Cut(p.Name, "/kubelet/"); ok && p.Alive {
			crashed = node
			break
		}
	}
	if crashed == "" {
		t.Fatal("no pod process recorded by any kubelet")
	}
	var orphans []int
	for _, p := range procs {
		if strings.HasPrefix(p.Name, crashed+"/kubelet/") && p.Alive {
			orphans = append(orphans, p.PID)
			if err := os.Remove(filepath.Join(l.Dir, p.Name+".pid")); err != nil {
				t.Fatal(err)
			}
		}
		if p.Name == "pids/"+crashed+"-kubelet" {
			if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil {
				t.Fatalf("kill %s's kubelet: %v", crashed, err)
			}
		}
	}
	t.Logf("killed %s's kubelet; orphaned pod processes: %v", crashed, orphans)
	pinDir := lab.BPFPinRoot + "/down-test"
	if err := os.MkdirAll(pinDir, 0o755); err != nil {
		t.Fatalf("create a directory in the lab's bpffs root: %v", err)
	}
	start := time.Now()
	err = lab.Down(l.Dir)
	*downed = true
	if err != nil {
		t.Fatalf("down: %v", err)
	}
	t.Logf("down in %s", time.Since(start).Round(10*time.Millisecond))
	if nss, err := lab.LabNetns(); err != nil || len(nss) > 0 {
		t.Errorf("lab namespaces left: %v (%v)", nss, err)
	}
	for _, p := range procs {
		if stat, err := os.ReadFile("/proc/" + strconv.Itoa(p.PID) + "/stat"); err == nil {
			if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); len(f) > 0 && f[0] != "Z" {
				t.Errorf("process %s (pid %d) still running", p.Name, p.PID)
			}
		}
	}
	for _, pid := range orphans {
		if stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
			if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); len(f) > 0 && f[0] != "Z" {
				t.Errorf("orphaned pod process %d still running", pid)
			}
		}
	}
	if _, err := os.Stat(l.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lab dir %s still exists", l.Dir)
	}
	if _, err := os.Stat(lab.BPFPinRoot); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bpffs dir %s still exists", lab.BPFPinRoot)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		if mp := f[4]; strings.HasPrefix(mp, l.Dir) || (strings.HasPrefix(mp, "/run/netns/") && lab.IsLabNetns(filepath.Base(mp))) {
			t.Errorf("mount left: %s", line)
		}
	}
	if ln, err := net.Listen("tcp", lab.ForwardAddr); err != nil {
		t.Errorf("%s still in use after down: %v", lab.ForwardAddr, err)
	} else {
		ln.Close()
	}
	if err := lab.Down(l.Dir); err != nil {
		t.Errorf("second down (idempotence): %v", err)
	}
}
