package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/bgplb/bgplb/daemon/client/clientset/versioned"
)

// version is set with -ldflags "-X main.version=...".
var version = "dev"

// globals are the flags every subcommand shares.
type globals struct {
	kubeconfig string
	nodeName   string
	socket     string
	pinDir     string
}

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	g := &globals{nodeName: os.Getenv("NODE_NAME"), socket: "/run/bgplb/bgplbd.sock", pinDir: "/sys/fs/bpf/bgplb"}
	if g.nodeName == "" {
		g.nodeName, _ = os.Hostname() // best effort default; --node-name overrides
	}
	root := &cobra.Command{
		Use:           "bgplbctl",
		Short:         "Inspect bgplb on this node",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "Path to a kubeconfig (default $KUBECONFIG, else in-cluster).")
	pf.StringVar(&g.nodeName, "node-name", g.nodeName, "Node to inspect (default $NODE_NAME or the hostname).")
	pf.StringVar(&g.socket, "socket", g.socket, "bgplbd's unix socket.")
	pf.StringVar(&g.pinDir, "bpf-pin-dir", g.pinDir, "bpffs directory of the datapath maps.")
	root.AddCommand(newStatusCmd(g), newLBCmd(g), newRouterConfigCmd(g), newDoctorCmd(g), newInstallCNICmd(), newUninstallCNICmd())
	return root
}

func (g *globals) clients() (kubernetes.Interface, versioned.Interface, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = g.kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("create kubernetes client: %w", err)
	}
	crd, err := versioned.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("create bgplb client: %w", err)
	}
	return kube, crd, nil
}
