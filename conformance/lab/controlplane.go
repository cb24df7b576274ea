package lab

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

const controllers = "endpointslice-controller,endpointslice-mirroring-controller,serviceaccount-controller," +
	"serviceaccount-token-controller,deployment-controller,replicaset-controller,namespace-controller," +
	"garbage-collector-controller,root-ca-certificate-publisher-controller,service-cidr-controller," +
	"pod-garbage-collector-controller"

func (l *Lab) k8sBin(name string) string { return filepath.Join(l.Opts.K8sBinDir, name) }

func (l *Lab) serviceCIDRs() string {
	if l.Opts.IPv6 {
		return serviceCIDRv4 + "," + serviceCIDRv6
	}
	return serviceCIDRv4
}

func (l *Lab) clusterCIDRs() string {
	if l.Opts.IPv6 {
		return clusterCIDRv4 + "," + clusterCIDRv6
	}
	return clusterCIDRv4
}

// startControlPlane starts etcd, kube-apiserver and the forwarder, waits for /readyz,
// then starts kube-controller-manager and kube-scheduler.
func (l *Lab) startControlPlane(ctx context.Context, p *pki) error {
	dir := l.Dir
	// etcd's data lives on a tmpfs: the lab is disposable, and fsync on the machine's
	// disk would make bulk writes (the scale benchmark's 20k objects) disk-bound.
	// Down unmounts it with every other mount under the lab dir.
	etcdDir := filepath.Join(dir, "etcd")
	if err := os.MkdirAll(etcdDir, 0o700); err != nil {
		return fmt.Errorf("create etcd data dir: %w", err)
	}
	if err := unix.Mount("tmpfs", etcdDir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0700,size=4g"); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", etcdDir, err)
	}
	if _, err := startDetached(dir, "etcd", ControlPlaneNS, []string{
		"etcd", "--name", "bgplb-lab",
		"--data-dir", filepath.Join(etcdDir, "data"),
		"--listen-client-urls", "http://127.0.0.1:2379",
		"--advertise-client-urls", "http://127.0.0.1:2379",
		"--listen-peer-urls", "http://127.0.0.1:2380",
		"--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", "bgplb-lab=http://127.0.0.1:2380",
		"--listen-metrics-urls", "http://127.0.0.1:2381",
		"--logger", "zap", "--log-level", "warn",
	}, nil); err != nil {
		return err
	}
	advertise := ControlPlaneV4.String()
	var apiExtra []string
	ctrls := controllers
	if l.Opts.Runtime == RuntimeContainerd {
		// Real kubelets: `kubectl logs/exec` reach them by their InternalIP (the
		// hostnames resolve nowhere), bgplbd runs as a DaemonSet, and the node lifecycle
		// controller lifts the not-ready taint the kubelets put on their Nodes.
		apiExtra = []string{"--kubelet-preferred-address-types=InternalIP"}
		ctrls += ",daemonset-controller,node-lifecycle-controller"
	}
	if _, err := startDetached(dir, "kube-apiserver", ControlPlaneNS, append([]string{
		l.k8sBin("kube-apiserver"),
		"--etcd-servers", "http://127.0.0.1:2379",
		"--bind-address", "0.0.0.0",
		"--secure-port", fmt.Sprint(APIServerPort),
		"--advertise-address", advertise,
		"--tls-cert-file", p.path("apiserver.crt"),
		"--tls-private-key-file", p.path("apiserver.key"),
		"--client-ca-file", p.path("ca.crt"),
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", p.path("sa.pub"),
		"--service-account-signing-key-file", p.path("sa.key"),
		"--authorization-mode", "RBAC",
		"--service-cluster-ip-range", l.serviceCIDRs(),
		"--allow-privileged=true",
		// Accept the legacy IP/CIDR forms (e.g. "010.0.0.0/8") that API servers before
		// 1.36 accept and existing objects keep: the suite proves bgplb fails closed on them.
		"--feature-gates", "StrictIPCIDRValidation=false",
		"--profiling=false",
		"--v=1",
	}, apiExtra...), nil); err != nil {
		return err
	}
	if _, err := startDetached(dir, "forward", "", []string{
		l.labBinary(), "forward", "--listen", ForwardAddr, "--netns", ControlPlaneNS,
		"--target", net.JoinHostPort(advertise, fmt.Sprint(APIServerPort)),
	}, nil); err != nil {
		return err
	}
	cs, err := l.Clientset()
	if err != nil {
		return err
	}
	if err := l.waitReadyz(ctx, cs, 90*time.Second); err != nil {
		return err
	}
	kc := filepath.Join(dir, kubeconfigFabric)
	common := []string{"--kubeconfig", kc, "--authentication-kubeconfig", kc, "--authorization-kubeconfig", kc,
		"--leader-elect=false", "--bind-address", "127.0.0.1", "--profiling=false", "--v=1"}
	if _, err := startDetached(dir, "kube-controller-manager", ControlPlaneNS, append([]string{
		l.k8sBin("kube-controller-manager"),
		"--controllers", ctrls,
		"--service-account-private-key-file", p.path("sa.key"),
		"--root-ca-file", p.path("ca.crt"),
		"--use-service-account-credentials=false",
		"--endpointslice-updates-batch-period", "0s",
	}, common...), nil); err != nil {
		return err
	}
	if _, err := startDetached(dir, "kube-scheduler", ControlPlaneNS, append([]string{
		l.k8sBin("kube-scheduler"),
	}, common...), nil); err != nil {
		return err
	}
	return nil
}

// waitReadyz polls the API server's /readyz through the forwarder.
func (l *Lab) waitReadyz(ctx context.Context, cs kubernetes.Interface, timeout time.Duration) error {
	var last error
	err := poll(ctx, timeout, 250*time.Millisecond, func(ctx context.Context) (bool, error) {
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			last = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(body)))
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("wait for kube-apiserver /readyz (see %s): %w (last: %v)",
			filepath.Join(l.Dir, "logs", "kube-apiserver.log"), err, last)
	}
	return nil
}

// waitServiceAccount waits for the default ServiceAccount, without which Pods are rejected.
func (l *Lab) waitServiceAccount(ctx context.Context, cs kubernetes.Interface, timeout time.Duration) error {
	err := poll(ctx, timeout, 250*time.Millisecond, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("wait for ServiceAccount default/default (see %s): %w",
			filepath.Join(l.Dir, "logs", "kube-controller-manager.log"), err)
	}
	return nil
}

// poll calls cond every interval until it returns true or an error, or timeout passes.
func poll(parent context.Context, timeout, interval time.Duration, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ok, err := cond(ctx)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			if parent.Err() != nil {
				return fmt.Errorf("interrupted: %w", parent.Err())
			}
			return fmt.Errorf("timed out after %s", timeout)
		case <-t.C:
		}
	}
}
