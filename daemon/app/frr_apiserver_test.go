//go:build apiserver

// This test runs the real bgplbd binary against a real kube-apiserver (with the DaemonSet's
// RBAC and admission policies, and a ServiceAccount token bound to a bgplbd Pod on node1)
// and a real FRR bgpd, all inside a private network namespace:
//
//	go test -tags apiserver -run TestDaemonWithFRR ./daemon/app
//
// Needs root, etcd, kube-apiserver (BGPLB_K8S_BIN_DIR, default /root/.cache/bgplb/bin),
// kubectl and FRR (/usr/lib/frr/bgpd, vtysh). The namespace, processes and files are
// removed when the test ends.
package app

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/bgplb/bgplb/internal/poll"
)

type nsEnv struct {
	t  *testing.T
	ns string
	d  string
}

func (e *nsEnv) run(args ...string) string {
	e.t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", e.ns}, args...)...).CombinedOutput()
	if err != nil {
		e.t.Fatalf("%v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (e *nsEnv) try(args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", e.ns}, args...)...).CombinedOutput()
	return string(out), err
}

// start runs a process in the namespace, logging to d/name.log, killed (by PID) at cleanup.
func (e *nsEnv) start(name string, args ...string) {
	e.t.Helper()
	logf, err := os.Create(filepath.Join(e.d, name+".log"))
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", e.ns}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start %s: %v", name, err)
	}
	e.t.Cleanup(func() {
		_ = cmd.Process.Kill() // ip netns exec execs the binary: this is its PID
		_ = cmd.Wait()
		_ = logf.Close()
	})
}

// eventually polls cond every 250 ms until it reports ok; what it says otherwise is the
// failure's last value.
func (e *nsEnv) eventually(what string, timeout time.Duration, cond func() (bool, string)) {
	e.t.Helper()
	poll.Eventually(e.t, timeout, 250*time.Millisecond, what, func() string {
		if ok, s := cond(); !ok {
			return "not yet: " + s
		}
		return ""
	})
}

func need(t *testing.T, path string) string {
	t.Helper()
	if p, err := exec.LookPath(path); err == nil {
		return p
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s not found: %v", path, err)
	}
	return path
}

func TestDaemonWithFRR(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespace, FRR)")
	}
	binDir := os.Getenv("BGPLB_K8S_BIN_DIR")
	if binDir == "" {
		binDir = "/root/.cache/bgplb/bin"
	}
	apiserver := need(t, filepath.Join(binDir, "kube-apiserver"))
	// kubectl is built with the servers (make tools): the same version, on any machine.
	kubectl := need(t, filepath.Join(binDir, "kubectl"))
	etcd, bgpd, vtysh := need(t, "etcd"), need(t, "/usr/lib/frr/bgpd"), need(t, "vtysh")
	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Join(filepath.Dir(file), "..", "..")

	// Not t.TempDir: bgpd runs as user frr and must traverse every parent directory.
	d, err := os.MkdirTemp("", "bgplb-apptest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) }) // registered first: runs after the processes stopped
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(d, "bgplbd")
	for _, cmd := range []string{"bgplbd", "bgplbctl"} {
		build := exec.Command("go", "build", "-o", filepath.Join(d, cmd), "./daemon/cmd/"+cmd)
		build.Dir = repo
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", cmd, err, out)
		}
	}

	e := &nsEnv{t: t, ns: fmt.Sprintf("bgplb-apptest-%d", os.Getpid()), d: d}
	if out, err := exec.Command("ip", "netns", "add", e.ns).CombinedOutput(); err != nil {
		t.Fatalf("add netns: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", e.ns).Run() }) // after the processes (LIFO)
	e.run("ip", "link", "set", "lo", "up")
	e.run("ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1")
	e.run("ip", "addr", "add", "198.18.0.11/24", "dev", "v0")
	e.run("ip", "addr", "add", "198.18.0.1/24", "dev", "v1")
	e.run("ip", "link", "set", "v0", "up")
	e.run("ip", "link", "set", "v1", "up")

	// Control plane.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) string {
		p := filepath.Join(d, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	saKey := write("sa.key", string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})))
	saPub := write("sa.pub", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})))
	tokens := write("tokens.csv", "admintoken,admin,admin,\"system:masters\"\n")
	kc := func(user, token string) string {
		return write("kubeconfig-"+user, fmt.Sprintf("apiVersion: v1\nkind: Config\nclusters: [{name: s, cluster: {server: \"https://127.0.0.1:6443\", insecure-skip-tls-verify: true}}]\n"+
			"users: [{name: u, user: {token: %s}}]\ncontexts: [{name: s, context: {cluster: s, user: u}}]\ncurrent-context: s\n", token))
	}
	admin := kc("admin", "admintoken")
	e.start("etcd", etcd, "--name=t", "--data-dir="+filepath.Join(d, "etcd"),
		"--listen-client-urls=http://127.0.0.1:2379", "--advertise-client-urls=http://127.0.0.1:2379",
		"--listen-peer-urls=http://127.0.0.1:2380", "--initial-advertise-peer-urls=http://127.0.0.1:2380",
		"--initial-cluster=t=http://127.0.0.1:2380")
	e.start("kube-apiserver", apiserver, "--allow-privileged=true", "--etcd-servers=http://127.0.0.1:2379",
		"--bind-address=127.0.0.1", "--advertise-address=198.18.0.11", "--secure-port=6443",
		"--cert-dir="+filepath.Join(d, "certs"), "--token-auth-file="+tokens, "--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc", "--service-account-key-file="+saPub,
		"--service-account-signing-key-file="+saKey, "--service-cluster-ip-range=198.18.128.0/20",
		"--enable-priority-and-fairness=false")
	k := func(args ...string) (string, error) {
		return e.try(append([]string{kubectl, "--kubeconfig", admin}, args...)...)
	}
	e.eventually("kube-apiserver ready", 90*time.Second, func() (bool, string) {
		out, err := k("get", "--raw", "/readyz")
		return err == nil, out
	})

	// The manifests exactly as a user applies them, then the lab-like objects.
	if out, err := k("apply", "-k", filepath.Join(repo, "manifests", "base")); err != nil {
		t.Fatalf("apply -k manifests/base: %v\n%s", err, out)
	}
	e.eventually("CRDs established", 30*time.Second, func() (bool, string) {
		out, err := k("get", "bgppeers")
		return err == nil, out
	})
	objs := write("objs.yaml", `apiVersion: v1
kind: Node
metadata: {name: node1}
---
apiVersion: bgplb.io/v1alpha1
kind: LoadBalancerIPPool
metadata: {name: default}
spec: {blocks: [{cidr: 203.0.113.0/28}], avoidBuggyIPs: true}
---
apiVersion: bgplb.io/v1alpha1
kind: BGPPeer
metadata: {name: router}
spec: {localASN: 64513, peerASN: 64512, peerAddress: 198.18.0.1, sourceAddress: 198.18.0.11, timers: {connectRetrySeconds: 2, holdTimeSeconds: 9, keepaliveTimeSeconds: 3}, gracefulRestart: {enabled: true}}
---
apiVersion: bgplb.io/v1alpha1
kind: BGPAdvertisement
metadata: {name: default}
spec: {weightedECMP: true, communities: ["64512:100"], largeCommunities: ["64512:1:2"]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: LoadBalancer
  loadBalancerClass: bgplb.io/bgp
  externalTrafficPolicy: Local
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: foreign, namespace: default}
spec:
  type: LoadBalancer
  loadBalancerClass: example.com/other
  ports: [{name: http, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- {addresses: [198.19.1.5], nodeName: node1, conditions: {ready: true}, targetRef: {kind: Pod, namespace: default, name: web-0}}
- {addresses: [198.19.1.6], nodeName: node1, conditions: {ready: true}, targetRef: {kind: Pod, namespace: default, name: web-1}}
`)
	if out, err := k("apply", "-f", objs); err != nil {
		t.Fatalf("apply objects: %v\n%s", err, out)
	}
	if out, err := k("patch", "node", "node1", "--subresource=status", "--type=merge", "-p",
		`{"status":{"addresses":[{"type":"InternalIP","address":"198.18.0.11"}],"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","message":"ok","lastHeartbeatTime":"2026-01-01T00:00:00Z","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}`); err != nil {
		t.Fatalf("patch node: %v\n%s", err, out)
	}

	// The daemon's credentials as the kubelet mints them: a bgplbd ServiceAccount token
	// bound to a bgplbd Pod on node1 (the admission policies of manifests/base let it
	// write node1's BGPNodeState only).
	if out, err := k("-n", "bgplb-system", "run", "bgplbd-node1", "--image=ghcr.io/bgplb/bgplb:v0.1.0", "--restart=Never",
		"--overrides", `{"spec":{"serviceAccountName":"bgplbd","nodeName":"node1"}}`); err != nil {
		t.Fatalf("create bgplbd pod: %v\n%s", err, out)
	}
	saToken, err := k("-n", "bgplb-system", "create", "token", "bgplbd", "--bound-object-kind=Pod",
		"--bound-object-name=bgplbd-node1", "--duration=1h")
	if err != nil {
		t.Fatalf("create token: %v\n%s", err, saToken)
	}
	daemon := kc("daemon", strings.TrimSpace(saToken))
	// The allocator's, as for a bgplb-allocator Deployment pod: the only ServiceAccount
	// that may write Service status.
	if out, err := k("-n", "bgplb-system", "run", "bgplb-allocator-0", "--image=ghcr.io/bgplb/bgplb:v0.1.0", "--restart=Never",
		"--overrides", `{"spec":{"serviceAccountName":"bgplb-allocator","nodeName":"node1"}}`); err != nil {
		t.Fatalf("create allocator pod: %v\n%s", err, out)
	}
	allocToken, err := k("-n", "bgplb-system", "create", "token", "bgplb-allocator", "--bound-object-kind=Pod",
		"--bound-object-name=bgplb-allocator-0", "--duration=1h")
	if err != nil {
		t.Fatalf("create token: %v\n%s", err, allocToken)
	}
	allocator := kc("allocator", strings.TrimSpace(allocToken))

	// FRR with the configuration bgplbctl generates.
	frrDir := filepath.Join(d, "frr")
	if err := os.MkdirAll(frrDir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf, err := exec.Command(filepath.Join(d, "bgplbctl"), "router-config", "frr", "--node-cidr", "198.18.0.0/24",
		"--pool", "203.0.113.0/24", "--router-id", "198.18.0.1").Output()
	if err != nil {
		t.Fatal(err)
	}
	write("frr/bgpd.conf", string(conf))
	if out, err := exec.Command("chown", "-R", "frr:frr", frrDir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v\n%s", err, out)
	}
	e.start("bgpd", bgpd, "-Z", "-l", "198.18.0.1", "-p", "179", "-f", filepath.Join(frrDir, "bgpd.conf"),
		"--vty_socket", frrDir, "-i", filepath.Join(frrDir, "bgpd.pid"), "-u", "frr", "-g", "frr", "-P", "0")
	route := func() (string, error) {
		return e.try(vtysh, "--vty_socket", frrDir, "-c", "show bgp ipv4 unicast 203.0.113.1/32")
	}

	// The daemon as the DaemonSet runs it (--mode=node; datapath off: no CNI here), and
	// the allocator as its Deployment does, each with its own ServiceAccount.
	daemonArgs := []string{bin, "--kubeconfig", daemon, "--node-name", "node1", "--mode=node",
		"--socket", filepath.Join(d, "run", "bgplbd.sock"), "--records-dir", filepath.Join(d, "run", "endpoints"),
		"--bpf-pin-dir", filepath.Join(d, "bpf"), "--datapath=false", "--v=2"}
	e.start("bgplbd", daemonArgs...)
	e.start("allocator", bin, "--kubeconfig", allocator, "--node-name", "node1", "--mode=allocator",
		"--metrics-bind-address=", "--health-bind-address=", "--v=2")

	e.eventually("FRR has the VIP with 2 endpoints' link bandwidth and the communities", 60*time.Second, func() (bool, string) {
		out, err := route()
		return err == nil && strings.Contains(out, "(2.000 Mbps)") && strings.Contains(out, "Community: 64512:100") &&
			strings.Contains(out, "Large Community: 64512:1:2") && strings.Contains(out, "198.18.0.11"), out
	})
	e.eventually("Announced condition", 30*time.Second, func() (bool, string) {
		out, _ := k("get", "svc", "web", "-o", `jsonpath={.status.conditions[?(@.type=="bgplb.io/Announced")].status}`)
		return out == "True", out
	})
	// Its own BGPNodeState is written through the node-state admission policy.
	e.eventually("BGPNodeState node1 announces 1 IPv4 prefix", 30*time.Second, func() (bool, string) {
		out, _ := k("get", "bgpnodestate", "node1", "-o", "jsonpath={.status.announced.ipv4}")
		return out == "1", out
	})
	if out, _ := k("get", "svc", "foreign", "-o", "jsonpath={.status}"); strings.Contains(out, "ingress") || strings.Contains(out, "conditions") {
		t.Fatalf("foreign-class service written: %s", out)
	}

	// One endpoint unready: the link bandwidth halves.
	if out, err := k("patch", "endpointslice", "web-1", "--type=json", "-p", `[{"op":"replace","path":"/endpoints/1/conditions/ready","value":false}]`); err != nil {
		t.Fatalf("patch slice: %v\n%s", err, out)
	}
	e.eventually("link bandwidth 1 Mbps", 10*time.Second, func() (bool, string) {
		out, err := route()
		return err == nil && strings.Contains(out, "(1.000 Mbps)"), out
	})

	// No endpoint: withdrawn, and the condition names the reason.
	if out, err := k("delete", "endpointslice", "web-1"); err != nil {
		t.Fatalf("delete slice: %v\n%s", err, out)
	}
	e.eventually("VIP withdrawn", 10*time.Second, func() (bool, string) {
		out, _ := route()
		return strings.Contains(out, "Network not in table"), out
	})
	e.eventually("NoEligibleEndpoints", 30*time.Second, func() (bool, string) {
		out, _ := k("get", "svc", "web", "-o", `jsonpath={.status.conditions[?(@.type=="bgplb.io/Announced")].reason}`)
		return out == "NoEligibleEndpoints", out
	})
	for _, name := range []string{"bgplbd", "allocator"} {
		logs, _ := os.ReadFile(filepath.Join(d, name+".log"))
		if strings.Contains(string(logs), "forbidden") {
			t.Fatalf("%s hit RBAC errors with its ServiceAccount:\n%s", name, logs)
		}
	}
}
