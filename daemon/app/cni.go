package app

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/spf13/pflag"

	"github.com/bgplb/bgplb/daemon/cnichain"
)

// DefaultCNIPluginBinary is where the image holds the bgplb CNI plugin.
const DefaultCNIPluginBinary = "/opt/bgplb/cni/bgplb"

// CNIOptions are the flags of the CNI chaining loop (docs/design.md, "CNI chaining").
type CNIOptions struct {
	ConfDir      string // empty: no chaining loop (an init container or the user chains)
	BinDir       string
	PluginBinary string
	Chain        bool
	PluginConf   string // JSON object of extra fields of the conflist entry
}

// CNIConfig is the validated chaining configuration.
type CNIConfig struct {
	ConfDir      string // empty: the loop does not run
	BinDir       string
	PluginBinary string
	// Enabled chains; false (--cni-chain=false or --datapath=false) unchains.
	Enabled bool
	// Entry is the conflist entry: the daemon's paths plus --cni-plugin-conf.
	Entry map[string]any
}

// DefaultCNIOptions returns the defaults.
func DefaultCNIOptions() CNIOptions {
	return CNIOptions{BinDir: "/opt/cni/bin", PluginBinary: DefaultCNIPluginBinary, Chain: true}
}

// AddFlags registers the chaining flags on fs.
func (o *CNIOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.ConfDir, "cni-conf-dir", o.ConfDir, "Node's CNI conf dir (as mounted): keep the bgplb plugin chained last in its first configuration, re-chaining when the primary CNI rewrites it. Empty: no chaining by the daemon.")
	fs.StringVar(&o.BinDir, "cni-bin-dir", o.BinDir, "Node's CNI bin dir (as mounted) the plugin binary is installed into.")
	fs.StringVar(&o.PluginBinary, "cni-plugin-binary", o.PluginBinary, "The bgplb CNI plugin binary to install into --cni-bin-dir; empty: expect it there.")
	fs.BoolVar(&o.Chain, "cni-chain", o.Chain, "Chain the plugin (with --cni-conf-dir); false, or --datapath=false, unchains it instead.")
	fs.StringVar(&o.PluginConf, "cni-plugin-conf", o.PluginConf, `Extra fields of the plugin's conflist entry, a JSON object (e.g. {"logFile":"/var/log/bgplb-cni.log"}).`)
}

// config validates the options; socket, recordsDir and pinDir are the daemon's, which the
// plugin must use too, and so is the datapath attach mode (set in the entry unless auto).
func (o *CNIOptions) config(datapath bool, socket, recordsDir, pinDir, attach string) (CNIConfig, error) {
	if o.ConfDir == "" {
		return CNIConfig{}, nil
	}
	for name, p := range map[string]string{"--cni-conf-dir": o.ConfDir, "--cni-bin-dir": o.BinDir} {
		if !filepath.IsAbs(p) {
			return CNIConfig{}, fmt.Errorf("%s: %q must be an absolute path", name, p)
		}
	}
	if o.PluginBinary != "" && !filepath.IsAbs(o.PluginBinary) {
		return CNIConfig{}, fmt.Errorf("--cni-plugin-binary: %q must be an absolute path", o.PluginBinary)
	}
	entry := map[string]any{}
	if o.PluginConf != "" {
		if err := json.Unmarshal([]byte(o.PluginConf), &entry); err != nil {
			return CNIConfig{}, fmt.Errorf("--cni-plugin-conf: %w", err)
		}
	}
	entry["type"] = cnichain.PluginType
	entry["daemonSocket"], entry["recordsDir"], entry["bpfPinDir"] = socket, recordsDir, pinDir
	if attach != "" && attach != "auto" {
		entry["datapathAttach"] = attach
	}
	return CNIConfig{ConfDir: o.ConfDir, BinDir: o.BinDir, PluginBinary: o.PluginBinary,
		Enabled: o.Chain && datapath, Entry: entry}, nil
}

// startCNIChain runs the chaining loop (when --cni-conf-dir is set) until ctx ends, then
// uninstalls bgplb from the node if the daemon's DaemonSet is being removed.
func startCNIChain(ctx context.Context, wg *sync.WaitGroup, cfg Config, kube kubernetes.Interface) {
	c := cfg.CNI
	if c.ConfDir == "" {
		return
	}
	logger := klog.FromContext(ctx).WithName("cni")
	loop := &cnichain.Loop{ConfDir: c.ConfDir, BinDir: c.BinDir, PluginBinary: c.PluginBinary, Entry: c.Entry, Enabled: c.Enabled}
	logger.Info("CNI chaining loop started", "chain", c.Enabled, "confDir", c.ConfDir, "binDir", c.BinDir)
	wg.Go(func() {
		if err := loop.Run(klog.NewContext(ctx, logger)); err != nil {
			logger.Error(err, "CNI chaining loop failed")
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		removed, why := daemonSetRemoved(sctx, kube, os.Getenv("POD_NAMESPACE"), os.Getenv("POD_NAME"))
		if !removed {
			logger.Info("leaving the CNI plugin chained for the next daemon", "reason", why)
			return
		}
		logger.Info("uninstalling bgplb from the node", "reason", why)
		if err := cnichain.Uninstall(c.ConfDir, c.BinDir, cfg.BPFPinDir); err != nil {
			logger.Error(err, "uninstalling bgplb from the node failed")
		}
	})
}

// daemonSetRemoved reports whether the DaemonSet owning pod namespace/name is gone or
// being deleted (uninstalling bgplb), as opposed to a rolling update or a restart. Every
// doubt (no pod identity, API errors, no owner) answers false: bgplb stays chained. why
// says which case applied (a stable camelCase reason).
func daemonSetRemoved(ctx context.Context, kube kubernetes.Interface, namespace, name string) (bool, string) {
	if namespace == "" || name == "" {
		return false, "noPodIdentity"
	}
	pod, err := kube.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, "podUnknown"
	}
	for _, ref := range pod.OwnerReferences {
		if ref.Kind != "DaemonSet" || ref.Controller == nil || !*ref.Controller {
			continue
		}
		ds, err := kube.AppsV1().DaemonSets(namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return true, "daemonSetDeleted"
		case err != nil:
			return false, "daemonSetUnknown"
		case ds.UID != ref.UID:
			// Deleted and created again: the new DaemonSet's daemons keep the chaining
			// (and use the pins), so this one must not remove them.
			return false, "daemonSetReplaced"
		case ds.DeletionTimestamp != nil:
			return true, "daemonSetDeleting"
		default:
			return false, "daemonSetPresent"
		}
	}
	return false, "noDaemonSetOwner"
}
