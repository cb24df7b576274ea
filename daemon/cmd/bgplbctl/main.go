package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/bgplb/bgplb/daemon/client/clientset/versioned"
	"github.com/bgplb/bgplb/daemon/clusterview"
)

// version is set with -ldflags "-X main.version=...".
var version = "dev"

// globals are the flags every subcommand shares.
type globals struct {
	// cluster holds --kubeconfig, -o and the cluster commands' flags.
	cluster  *clusterview.Options
	nodeName string
	socket   string
	pinDir   string
}

func main() {
	os.Exit(clusterview.Main(newRoot(), os.Stderr))
}

func newRoot() *cobra.Command {
	g := &globals{cluster: clusterview.NewOptions(), nodeName: os.Getenv("NODE_NAME"), socket: "/run/bgplb/bgplbd.sock", pinDir: "/sys/fs/bpf/bgplb"}
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
	pf.StringVar(&g.cluster.Kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "Path to a kubeconfig (default $KUBECONFIG, else in-cluster).")
	g.cluster.AddOutputFlag(pf)
	pf.StringVar(&g.nodeName, "node-name", g.nodeName, "Node to inspect (default $NODE_NAME or the hostname).")
	pf.StringVar(&g.socket, "socket", g.socket, "bgplbd's unix socket.")
	pf.StringVar(&g.pinDir, "bpf-pin-dir", g.pinDir, "bpffs directory of the datapath maps.")
	root.AddCommand(newStatusCmd(g), newLBCmd(g), newRouterConfigCmd(g), newDoctorCmd(g), newInstallCNICmd(), newUninstallCNICmd())
	// The cluster view of `kubectl bgplb`; its doctor is cluster-doctor here.
	for _, c := range clusterview.Commands(g.cluster, "cluster-doctor") {
		g.cluster.AddFlags(c.Flags())
		root.AddCommand(c)
	}
	return root
}

func (g *globals) clients() (kubernetes.Interface, versioned.Interface, error) {
	cfg, err := g.cluster.RESTConfig()
	if err != nil {
		return nil, nil, err
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
