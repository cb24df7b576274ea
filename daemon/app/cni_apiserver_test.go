//go:build apiserver

// The DaemonSet-removal uninstall against a real kube-apiserver, with the real bgplbd
// binary, real CNI files and real bpffs pins:
//
//	go test -tags apiserver -run TestDaemonUninstallsOnDaemonSetRemoval ./daemon/app
//
// Needs root, etcd, kube-apiserver and kubectl (BGPLB_K8S_BIN_DIR, default
// /root/.cache/bgplb/bin). Without a controller manager nothing garbage-collects: the
// Pod object stays, a background delete removes the DaemonSet at once and a foreground
// delete leaves it with a deletionTimestamp (both count as removal).
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
	"syscall"
	"testing"
	"time"

	"github.com/bgplb/bgplb/bpf"
	"github.com/bgplb/bgplb/daemon/cnichain"
)

func TestDaemonUninstallsOnDaemonSetRemoval(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespace, bpffs)")
	}
	binDir := os.Getenv("BGPLB_K8S_BIN_DIR")
	if binDir == "" {
		binDir = "/root/.cache/bgplb/bin"
	}
	apiserver := need(t, filepath.Join(binDir, "kube-apiserver"))
	kubectl := need(t, filepath.Join(binDir, "kubectl"))
	etcd := need(t, "etcd")
	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Join(filepath.Dir(file), "..", "..")

	d, err := os.MkdirTemp("", "bgplb-cnitest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	bin := filepath.Join(d, "bgplbd")
	build := exec.Command("go", "build", "-o", bin, "./daemon/cmd/bgplbd")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build bgplbd: %v\n%s", err, out)
	}
	pinRoot := filepath.Join("/sys/fs/bpf", fmt.Sprintf("cni-apitest-%d", os.Getpid()))
	if err := os.MkdirAll(pinRoot, 0o700); err != nil {
		t.Fatalf("bpffs: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(pinRoot) })

	e := &nsEnv{t: t, ns: fmt.Sprintf("bgplb-cnitest-%d", os.Getpid()), d: d}
	if out, err := exec.Command("ip", "netns", "add", e.ns).CombinedOutput(); err != nil {
		t.Fatalf("add netns: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", e.ns).Run() })
	e.run("ip", "link", "set", "lo", "up")
	write := func(name, content string) string {
		p := filepath.Join(d, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	saKey := write("sa.key", string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})))
	saPub := write("sa.pub", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})))
	tokens := write("tokens.csv", "admintoken,admin,admin,\"system:masters\"\n")
	admin := write("kubeconfig", "apiVersion: v1\nkind: Config\nclusters: [{name: s, cluster: {server: \"https://127.0.0.1:6443\", insecure-skip-tls-verify: true}}]\n"+
		"users: [{name: u, user: {token: admintoken}}]\ncontexts: [{name: s, context: {cluster: s, user: u}}]\ncurrent-context: s\n")
	e.start("etcd", etcd, "--name=t", "--data-dir="+filepath.Join(d, "etcd"),
		"--listen-client-urls=http://127.0.0.1:2379", "--advertise-client-urls=http://127.0.0.1:2379",
		"--listen-peer-urls=http://127.0.0.1:2380", "--initial-advertise-peer-urls=http://127.0.0.1:2380",
		"--initial-cluster=t=http://127.0.0.1:2380")
	e.start("kube-apiserver", apiserver, "--etcd-servers=http://127.0.0.1:2379",
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
	if out, err := k("apply", "-k", filepath.Join(repo, "manifests", "base", "crds")); err != nil {
		t.Fatalf("apply CRDs: %v\n%s", err, out)
	}
	if out, err := k("create", "namespace", "bgplb-system"); err != nil {
		t.Fatalf("create namespace: %v\n%s", err, out)
	}
	if out, err := k("create", "serviceaccount", "-n", "bgplb-system", "default"); err != nil { // no controller manager
		t.Fatalf("create service account: %v\n%s", err, out)
	}
	e.eventually("CRDs established", 30*time.Second, func() (bool, string) {
		out, err := k("get", "bgppeers")
		return err == nil, out
	})
	if out, err := k("apply", "-f", write("node.yaml", "apiVersion: v1\nkind: Node\nmetadata: {name: node1}\n")); err != nil {
		t.Fatalf("create node: %v\n%s", err, out)
	}
	if out, err := k("patch", "node", "node1", "--subresource=status", "--type=merge", "-p",
		`{"status":{"addresses":[{"type":"InternalIP","address":"198.18.0.11"}]}}`); err != nil {
		t.Fatalf("patch node: %v\n%s", err, out)
	}

	const pristine = "{\n  \"cniVersion\": \"1.0.0\", \"name\": \"k8s\",\n  \"plugins\": [{\"type\": \"ptp\"}]\n}\n"
	for _, c := range []struct {
		name     string
		remove   []string // kubectl args that remove the DaemonSet; nil: a restart
		wantGone bool
	}{
		{"restart", nil, false},
		{"background delete", []string{"delete", "daemonset", "-n", "bgplb-system", "bgplbd", "--wait=false"}, true},
		{"foreground delete", []string{"delete", "daemonset", "-n", "bgplb-system", "bgplbd", "--cascade=foreground", "--wait=false"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			dir := filepath.Join(d, strings.ReplaceAll(c.name, " ", "-"))
			confDir, cniBin, pinDir := filepath.Join(dir, "net.d"), filepath.Join(dir, "bin"), filepath.Join(pinRoot, strings.ReplaceAll(c.name, " ", "-"))
			for _, p := range []string{confDir, cniBin, pinDir} {
				if err := os.MkdirAll(p, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			m, err := bpf.OpenMaps(pinDir)
			if err != nil {
				t.Fatalf("pin maps: %v", err)
			}
			m.Close()
			conflist := filepath.Join(confDir, "10-k8s.conflist")
			write(strings.TrimPrefix(conflist, d+"/"), pristine)
			plugin := write(strings.TrimPrefix(filepath.Join(dir, "plugin"), d+"/"), "#!/bin/true\n")

			// The DaemonSet and "its" Pod (no controller manager: created by hand).
			if out, err := k("apply", "-f", write("ds.yaml", `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: bgplbd, namespace: bgplb-system}
spec:
  selector: {matchLabels: {app: bgplbd}}
  template:
    metadata: {labels: {app: bgplbd}}
    spec: {containers: [{name: bgplbd, image: example.invalid/bgplb}]}
`)); err != nil {
				t.Fatalf("create DaemonSet: %v\n%s", err, out)
			}
			uid, err := k("get", "daemonset", "-n", "bgplb-system", "bgplbd", "-o", "jsonpath={.metadata.uid}")
			if err != nil {
				t.Fatal(err)
			}
			if out, err := k("apply", "-f", write("pod.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: bgplbd-x
  namespace: bgplb-system
  ownerReferences: [{apiVersion: apps/v1, kind: DaemonSet, name: bgplbd, uid: %s, controller: true}]
spec: {nodeName: node1, containers: [{name: bgplbd, image: example.invalid/bgplb}]}
`, uid))); err != nil {
				t.Fatalf("create Pod: %v\n%s", err, out)
			}

			logf, err := os.Create(filepath.Join(dir, "bgplbd.log"))
			if err != nil {
				t.Fatal(err)
			}
			defer logf.Close()
			// nsenter, not ip netns exec: only the network namespace changes, so the host's
			// bpffs stays at /sys/fs/bpf (ip netns exec mounts a fresh /sys).
			cmd := exec.Command("nsenter", "--net=/run/netns/"+e.ns, bin, "--kubeconfig", admin, "--node-name", "node1",
				"--socket", filepath.Join(dir, "bgplbd.sock"), "--records-dir", filepath.Join(dir, "endpoints"),
				"--bpf-pin-dir", pinDir, "--uplink-interfaces", "lo", "--leader-elect=false",
				"--metrics-bind-address=", "--health-bind-address=", "--v=2",
				"--cni-conf-dir", confDir, "--cni-bin-dir", cniBin, "--cni-plugin-binary", plugin)
			cmd.Env = append(os.Environ(), "POD_NAMESPACE=bgplb-system", "POD_NAME=bgplbd-x")
			cmd.Stdout, cmd.Stderr = logf, logf
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			t.Cleanup(func() {
				_ = cmd.Process.Kill() // already exited unless the test failed early
			})
			e.eventually("bgplbd chained the plugin", 60*time.Second, func() (bool, string) {
				ok, err := cnichain.IsChained(confDir)
				return ok && cnichain.PluginInstalled(cniBin), fmt.Sprint(err)
			})
			e.eventually("bgplbd ready", 60*time.Second, func() (bool, string) {
				logs, _ := os.ReadFile(filepath.Join(dir, "bgplbd.log"))
				return strings.Contains(string(logs), "bgplbd ready"), string(logs)
			})

			if c.remove != nil {
				if out, err := k(c.remove...); err != nil {
					t.Fatalf("remove DaemonSet: %v\n%s", err, out)
				}
			}
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				logs, _ := os.ReadFile(filepath.Join(dir, "bgplbd.log"))
				t.Fatalf("signal bgplbd: %v\n%s", err, logs)
			}
			select {
			case err := <-exited:
				if err != nil {
					logs, _ := os.ReadFile(filepath.Join(dir, "bgplbd.log"))
					t.Fatalf("bgplbd exited with %v\n%s", err, logs)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("bgplbd did not stop")
			}
			logs, _ := os.ReadFile(filepath.Join(dir, "bgplbd.log"))
			got, _ := os.ReadFile(conflist)
			_, binErr := os.Stat(filepath.Join(cniBin, "bgplb"))
			_, pinErr := os.Stat(pinDir)
			if c.wantGone {
				if string(got) != pristine || !os.IsNotExist(binErr) || !os.IsNotExist(pinErr) {
					t.Fatalf("after removal: conflist %q, binary %v, pins %v\n%s", got, binErr, pinErr, logs)
				}
			} else if ok, _ := cnichain.IsChained(confDir); !ok || binErr != nil || pinErr != nil {
				t.Fatalf("after a restart: chained %v, binary %v, pins %v\n%s", ok, binErr, pinErr, logs)
			}

			// Reset for the next case (the foreground-deleted DaemonSet keeps its finalizer).
			_, _ = k("patch", "daemonset", "-n", "bgplb-system", "bgplbd", "--type=merge", "-p", `{"metadata":{"finalizers":null}}`) // may be gone
			_, _ = k("delete", "daemonset", "-n", "bgplb-system", "bgplbd", "--ignore-not-found", "--wait=true")                     // may be gone
			_, _ = k("delete", "pod", "-n", "bgplb-system", "bgplbd-x", "--ignore-not-found", "--grace-period=0", "--force")         // no kubelet
		})
	}
}
