package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/bpf"
	"github.com/bgplb/bgplb/daemon/bgp/bgptest"
	crdfake "github.com/bgplb/bgplb/daemon/client/clientset/versioned/fake"
	"github.com/bgplb/bgplb/daemon/cnichain"
	"github.com/bgplb/bgplb/internal/poll"
)

func TestCNIOptions(t *testing.T) {
	base := func() *Options {
		o := NewOptions()
		o.NodeName = "node1"
		return o
	}
	cfg, err := base().Config("test", nil)
	if err != nil || cfg.CNI.ConfDir != "" {
		t.Fatalf("default: %+v, %v; want no chaining loop", cfg.CNI, err)
	}
	o := base()
	o.CNI.ConfDir = "/etc/cni/net.d"
	o.CNI.PluginConf = `{"logFile":"/var/log/bgplb-cni.log"}`
	o.Socket = "/run/x/bgplbd.sock"
	if cfg, err = o.Config("test", nil); err != nil {
		t.Fatal(err)
	}
	c := cfg.CNI
	if !c.Enabled || c.BinDir != "/opt/cni/bin" || c.PluginBinary != DefaultCNIPluginBinary ||
		c.Entry["type"] != "bgplb" || c.Entry["daemonSocket"] != "/run/x/bgplbd.sock" ||
		c.Entry["bpfPinDir"] != DefaultBPFPinDir || c.Entry["logFile"] != "/var/log/bgplb-cni.log" {
		t.Fatalf("CNI config = %+v", c)
	}
	for name, mutate := range map[string]func(*Options){
		"--datapath=false":  func(o *Options) { o.Datapath = false },
		"--cni-chain=false": func(o *Options) { o.CNI.Chain = false },
	} {
		o := base()
		o.CNI.ConfDir = "/etc/cni/net.d"
		mutate(o)
		cfg, err := o.Config("test", nil)
		if err != nil || cfg.CNI.Enabled || cfg.CNI.ConfDir == "" {
			t.Errorf("%s: %+v, %v; want the loop to run disabled", name, cfg.CNI, err)
		}
	}
	o = base()
	o.CNI.ConfDir, o.CNI.PluginConf = "net.d", "{"
	if _, err := o.Config("test", nil); err == nil || !strings.Contains(err.Error(), "--cni-") {
		t.Fatalf("invalid CNI flags: %v", err)
	}
}

func TestDaemonSetRemoved(t *testing.T) {
	const ns = "bgplb-system"
	pod := func(owner *metav1.OwnerReference) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bgplbd-x"}}
		if owner != nil {
			p.OwnerReferences = []metav1.OwnerReference{*owner}
		}
		return p
	}
	owner := &metav1.OwnerReference{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "bgplbd", UID: "ds-1", Controller: ptr.To(true)}
	ds := func(uid types.UID, deleting bool) *appsv1.DaemonSet {
		d := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bgplbd", UID: uid}}
		if deleting {
			d.DeletionTimestamp = ptr.To(metav1.Now())
		}
		return d
	}
	for _, tc := range []struct {
		name       string
		podName    string
		objects    []any
		want       bool
		wantReason string
	}{
		{"no pod identity (lab, systemd)", "", nil, false, "noPodIdentity"},
		{"pod not found", "bgplbd-x", nil, false, "podUnknown"},
		{"rolling update: DaemonSet present", "bgplbd-x", []any{pod(owner), ds("ds-1", false)}, false, "daemonSetPresent"},
		{"DaemonSet deleted", "bgplbd-x", []any{pod(owner)}, true, "daemonSetDeleted"},
		{"DaemonSet being deleted (foreground)", "bgplbd-x", []any{pod(owner), ds("ds-1", true)}, true, "daemonSetDeleting"},
		{"DaemonSet replaced by a new one", "bgplbd-x", []any{pod(owner), ds("ds-2", false)}, false, "daemonSetReplaced"},
		{"no DaemonSet owner", "bgplbd-x", []any{pod(nil)}, false, "noDaemonSetOwner"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kube := fake.NewSimpleClientset()
			for _, o := range tc.objects {
				var err error
				switch o := o.(type) {
				case *corev1.Pod:
					_, err = kube.CoreV1().Pods(ns).Create(context.Background(), o, metav1.CreateOptions{})
				case *appsv1.DaemonSet:
					_, err = kube.AppsV1().DaemonSets(ns).Create(context.Background(), o, metav1.CreateOptions{})
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			got, why := daemonSetRemoved(context.Background(), kube, ns, tc.podName)
			if got != tc.want || why != tc.wantReason {
				t.Fatalf("daemonSetRemoved = %v, %q; want %v, %q", got, why, tc.want, tc.wantReason)
			}
		})
	}
}

// TestRunCNIChaining runs the daemon (against fake clients) with --cni-conf-dir and
// --datapath=false: it unchains what an earlier install chained, byte for byte; on
// shutdown with its DaemonSet present it leaves the node alone, with its DaemonSet deleted
// it removes the binary and the pins too.
func TestRunCNIChaining(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("pins need root")
	}
	const pristine = `{"cniVersion":"1.0.0","name":"k8s","plugins":[{"type":"ptp","ipam":{"type":"host-local"}}]}`
	pinRoot := filepath.Join("/sys/fs/bpf", fmt.Sprintf("app-cni-test-%d", os.Getpid()))
	if err := os.MkdirAll(pinRoot, 0o700); err != nil {
		t.Skipf("no bpffs: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(pinRoot) })
	const ns = "bgplb-system"
	t.Setenv("POD_NAMESPACE", ns)
	t.Setenv("POD_NAME", "bgplbd-x")

	for _, dsPresent := range []bool{true, false} {
		t.Run(fmt.Sprintf("daemonSetPresent=%v", dsPresent), func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			dir, confDir, binDir := t.TempDir(), t.TempDir(), t.TempDir()
			pinDir := filepath.Join(pinRoot, fmt.Sprintf("node-%v", dsPresent))
			if err := os.MkdirAll(pinDir, 0o700); err != nil {
				t.Fatal(err)
			}
			m, err := bpf.OpenMaps(pinDir)
			if err != nil {
				t.Fatalf("pin maps: %v", err)
			}
			m.Close()
			primary := filepath.Join(confDir, "10-k8s.conflist")
			if err := os.WriteFile(primary, []byte(pristine), 0o644); err != nil {
				t.Fatal(err)
			}
			src := filepath.Join(dir, "bgplb-plugin")
			if err := os.WriteFile(src, []byte("plugin"), 0o755); err != nil {
				t.Fatal(err)
			}
			if _, err := cnichain.InstallPlugin(src, binDir); err != nil {
				t.Fatal(err)
			}
			if _, err := cnichain.Chain(confDir, map[string]any{}); err != nil { // an earlier install
				t.Fatal(err)
			}

			node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"},
				Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "198.18.0.11"}}}}
			objs := []k8sruntime.Object{node, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bgplbd-x",
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "bgplbd", UID: "ds-1", Controller: ptr.To(true)}}}}}
			if dsPresent {
				objs = append(objs, &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bgplbd", UID: "ds-1"}})
			}
			kube := fake.NewSimpleClientset(objs...)

			o := NewOptions()
			o.NodeName, o.Datapath, o.LeaderElect = "node1", false, false
			o.Socket, o.RecordsDir, o.BPFPinDir = filepath.Join(dir, "bgplbd.sock"), filepath.Join(dir, "endpoints"), pinDir
			o.MetricsBindAddress, o.HealthBindAddress = "", ""
			o.CNI.ConfDir, o.CNI.BinDir, o.CNI.PluginBinary = confDir, binDir, src
			cfg, err := o.Config("test", nil)
			if err != nil {
				t.Fatal(err)
			}
			crd := crdfake.NewSimpleClientset()
			done := make(chan error, 1)
			go func() {
				done <- run(ctx, cfg, clients{kube: kube, ipam: kube, status: kube, crd: crd}, bgptest.NewFake())
			}()
			poll.Eventually(t, waitFor, tick, "unchained with the datapath off", func() bool {
				b, err := os.ReadFile(primary)
				return err == nil && string(b) == pristine
			})
			poll.Eventually(t, waitFor, tick, "daemon running (BGPNodeState written)", func() bool {
				_, err := crd.BgplbV1alpha1().BGPNodeStates().Get(ctx, "node1", metav1.GetOptions{})
				return err == nil
			})
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("run = %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("run did not stop")
			}
			_, binErr := os.Stat(filepath.Join(binDir, "bgplb"))
			_, pinErr := os.Stat(pinDir)
			if dsPresent {
				if binErr != nil || pinErr != nil {
					t.Fatalf("restart removed things: binary %v, pins %v", binErr, pinErr)
				}
				return
			}
			if !errors.Is(binErr, os.ErrNotExist) || !errors.Is(pinErr, os.ErrNotExist) {
				t.Fatalf("DaemonSet removal left things: binary %v, pins %v", binErr, pinErr)
			}
			if b, err := os.ReadFile(primary); err != nil || string(b) != pristine {
				t.Fatalf("conflist after uninstall = %q, %v", b, err)
			}
		})
	}
}
