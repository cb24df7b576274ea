package apiservertest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// Token is the bearer token of the server's only user, a member of system:masters.
const Token = "bgplb-apiservertest-admin"

// readyTimeout bounds the wait for /readyz; kube-apiserver needs 5-20 s on a loaded
// two-core machine.
const readyTimeout = 90 * time.Second

// Server is a running etcd + kube-apiserver pair.
type Server struct {
	// Config reaches the server as the system:masters user (TLS not verified: the
	// serving certificate is self-signed).
	Config *rest.Config
	// Kubeconfig is the path of a kubeconfig file for the same user, for kubectl.
	Kubeconfig string
	// Dir holds the servers' state, logs and the kubeconfig; removed after the test.
	Dir string
}

// K8sBinDir returns the directory holding the Kubernetes binaries (kube-apiserver,
// kubectl, and helm from `make tools`): $BGPLB_K8S_BIN_DIR or ~/.cache/bgplb/bin.
func K8sBinDir() string {
	if dir := os.Getenv("BGPLB_K8S_BIN_DIR"); dir != "" {
		return dir
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "/root"
	}
	return filepath.Join(home, ".cache", "bgplb", "bin")
}

// Tool returns the path of a binary in K8sBinDir and fails the test when it is missing.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(K8sBinDir(), name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not found (build it with `make tools` or set BGPLB_K8S_BIN_DIR): %v", name, err)
	}
	return p
}

func etcdBinary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("etcd"); err == nil {
		return p
	}
	p := "/usr/bin/etcd"
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("etcd not found in PATH or /usr/bin (make deps installs etcd-server): %v", err)
	}
	return p
}

// Start runs etcd and kube-apiserver, waits until the API server is ready and returns
// it. Everything is stopped and removed when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	apiserverBin, etcdBin := Tool(t, "kube-apiserver"), etcdBinary(t)
	dir := t.TempDir()

	clientPort, peerPort := freePort(t), freePort(t)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	startProcess(t, dir, "etcd", etcdBin,
		"--name=apiservertest", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=apiservertest="+peerURL)

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("generate service account key: %v", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatalf("marshal service account public key: %v", err)
	}
	privPath := writeFile(t, dir, "sa.key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	pubPath := writeFile(t, dir, "sa.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	tokens := writeFile(t, dir, "tokens.csv", []byte(Token+`,admin,admin,"system:masters"`+"\n"))

	port := freePort(t)
	startProcess(t, dir, "kube-apiserver", apiserverBin,
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", port),
		"--cert-dir="+filepath.Join(dir, "certs"),
		"--token-auth-file="+tokens,
		"--authorization-mode=RBAC",
		"--allow-privileged=true",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+pubPath,
		"--service-account-signing-key-file="+privPath,
		"--service-cluster-ip-range=198.18.128.0/20",
		"--enable-priority-and-fairness=false",
	)
	host := fmt.Sprintf("https://127.0.0.1:%d", port)
	s := &Server{
		Config: &rest.Config{
			Host:            host,
			BearerToken:     Token,
			TLSClientConfig: rest.TLSClientConfig{Insecure: true},
			QPS:             100, Burst: 200,
		},
		Dir: dir,
	}
	s.Kubeconfig = writeFile(t, dir, "kubeconfig", []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: apiservertest, cluster: {server: %q, insecure-skip-tls-verify: true}}]
users: [{name: admin, user: {token: %q}}]
contexts: [{name: apiservertest, context: {cluster: apiservertest, user: admin}}]
current-context: apiservertest
`, host, Token)))
	waitReady(t, s.Config)
	return s
}

func waitReady(t testing.TB, cfg *rest.Config) {
	t.Helper()
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatalf("http client: %v", err)
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		resp, err := hc.Get(cfg.Host + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("kube-apiserver not ready after %s (last: %v)", readyTimeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatalf("write %s: %v", p, err)
	}
	return p
}

// startProcess starts bin with its output in dir/<name>.log and stops it by PID (SIGTERM,
// then SIGKILL after 10 s) when the test ends; the process also dies with the test
// binary (Pdeathsig).
func startProcess(t testing.TB, dir, name, bin string, args ...string) {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("create %s: %v", logPath, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }() // the exit status of a process we stop says nothing
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // an already exited process is fine
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				if len(b) > 4000 {
					b = b[len(b)-4000:]
				}
				t.Logf("tail of %s log:\n%s", name, b)
			}
		}
	})
}
