package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/bgplb/bgplb/conformance/lab"
)

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	cancel()
	if err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		fmt.Fprintf(os.Stderr, "bgplb-lab: %v\n", err)
		os.Exit(1)
	}
}

// exitError carries the exit status of a command run by `exec`.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func newRootCmd() *cobra.Command {
	var dir string
	root := &cobra.Command{
		Use:           "bgplb-lab",
		Short:         "A real Kubernetes control plane, FRR router, client and nodes in network namespaces on this machine",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&dir, "dir", lab.DefaultDir, "lab state directory")
	root.AddCommand(newUpCmd(&dir), newDownCmd(&dir), newStatusCmd(&dir), newExecCmd(&dir),
		newKubeconfigCmd(&dir), newDemoCmd(&dir), newForwardCmd(), newKubeletCmd())
	root.AddCommand(newFaultCmd(&dir), newSuiteBaseCmd(&dir))
	return root
}

func newUpCmd(dir *string) *cobra.Command {
	var o lab.Options
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Bring the lab up",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Dir = *dir
			o.Logf = func(format string, args ...any) {
				fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
			}
			l, err := lab.Up(cmd.Context(), o)
			if err != nil {
				return err
			}
			fmt.Printf("lab is up: %d nodes; kubeconfig: %s\n", len(l.Nodes), l.Kubeconfig())
			fmt.Printf("try: kubectl --kubeconfig %s get nodes -o wide\n", l.Kubeconfig())
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Nodes, "nodes", 3, "number of nodes")
	f.BoolVar(&o.IPv6, "ipv6", false, "dual stack: add the IPv6 half of the address plan")
	f.StringVar(&o.ProxyMode, "proxy-mode", "nftables", "kube-proxy mode: nftables or iptables")
	f.BoolVar(&o.NoKubeProxy, "no-kube-proxy", false, "do not run kube-proxy (eBPF-only setup)")
	f.BoolVar(&o.NoDaemon, "no-daemon", false, "do not start bgplbd even when it is built")
	f.BoolVar(&o.ExportPodCIDR, "export-pod-cidr", false, "bgplbd announces the nodes' pod CIDRs over BGP instead of static routes on the router (pods are reachable once a BGPPeer exists)")
	f.BoolVar(&o.NoCNIPlugin, "no-cni-plugin", false, "do not chain the bgplb CNI plugin after ptp even when it is built")
	f.BoolVar(&o.NetworkPolicy, "network-policy", false, "run the NetworkPolicy enforcer kube-network-policies (make tools) on every node")
	f.BoolVar(&o.Recreate, "recreate", false, "tear down an existing lab first")
	f.StringVar(&o.Router, "router", "", "lab router: frr (default, or $BGPLB_LAB_ROUTER) or bird (BIRD 2 with Debian's default bird.conf and the bgplbctl router-config bird snippet)")
	f.Uint32Var(&o.NodeASN, "node-asn", lab.NodeASN, "AS the router expects from the nodes: 64513 (eBGP) or 64512 (iBGP)")
	f.StringVar(&o.Runtime, "runtime", "", "how nodes run pods: lab (default, or $BGPLB_LAB_RUNTIME: the lab kubelet) or containerd (real containerd + kubelet per node, bgplb installed from manifests/base and its image)")
	f.StringVar(&o.ImageDir, "image-dir", "", "--runtime containerd: the OCI archives of `make image image-pause` (default $BGPLB_IMAGE_DIR)")
	f.StringVar(&o.K8sBinDir, "k8s-bin-dir", "", "dir with kube-* and CNI plugin binaries (default $HOME/.cache/bgplb/bin)")
	f.StringVar(&o.BinDir, "bin-dir", "", "dir with bgplb-lab, podserver and bgplbd (default: this executable's dir)")
	return cmd
}

func newDownCmd(dir *string) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Tear the lab down (idempotent; also after a crash or a half-finished up)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if os.Geteuid() != 0 {
				return errors.New("bgplb-lab down needs root: run it with sudo")
			}
			if err := lab.Down(*dir); err != nil {
				return err
			}
			fmt.Println("lab is down")
			return nil
		},
	}
}

func newStatusCmd(dir *string) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show namespaces, processes, node readiness and the router's BGP summary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := lab.Open(*dir)
			if err != nil {
				return err
			}
			l.PrintStatus(cmd.Context(), os.Stdout)
			return nil
		},
	}
}

func newExecCmd(dir *string) *cobra.Command {
	return &cobra.Command{
		Use:   "exec NAME -- CMD [ARGS...]",
		Short: "Run a command inside a lab namespace (router, client, cp, nodeN or a full netns name)",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns := netnsName(args[0])
			if !lab.NetNS(ns).Exists() {
				return fmt.Errorf("no namespace %s (is the lab up? `bgplb-lab status --dir %s`)", ns, *dir)
			}
			argv := lab.NetNS(ns).Command(args[1:]...)
			c := exec.CommandContext(cmd.Context(), argv[0], argv[1:]...)
			c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
			c.Env = append(os.Environ(), "KUBECONFIG="+strings.TrimSuffix(*dir, "/")+"/kubeconfig-fabric")
			if err := c.Run(); err != nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					return &exitError{code: ee.ExitCode()}
				}
				return fmt.Errorf("run in %s: %w", ns, err)
			}
			return nil
		},
	}
}

// netnsName maps router|client|cp|nodeN to the lab's namespace names; anything else is
// taken as a full namespace name.
func netnsName(name string) string {
	switch {
	case name == "router", name == "client", name == "cp", strings.HasPrefix(name, "node"):
		return "bgplb-" + name
	}
	return name
}

func newKubeconfigCmd(dir *string) *cobra.Command {
	var fabric bool
	cmd := &cobra.Command{
		Use:   "kubeconfig",
		Short: "Print the path of the lab's admin kubeconfig",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			l, err := lab.Open(*dir)
			if err != nil {
				return err
			}
			if fabric {
				fmt.Println(l.KubeconfigFabric())
			} else {
				fmt.Println(l.Kubeconfig())
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&fabric, "fabric", false, "the kubeconfig for processes inside the lab namespaces")
	return cmd
}

func newForwardCmd() *cobra.Command {
	var listen, netns, target string
	cmd := &cobra.Command{
		Use:    "forward",
		Short:  "Relay TCP from a local address to a target dialled inside a namespace (started by up)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return lab.Forward(cmd.Context(), listen, lab.NetNS(netns), target)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", lab.ForwardAddr, "local listen address")
	f.StringVar(&netns, "netns", lab.ControlPlaneNS, "namespace to dial from")
	f.StringVar(&target, "target", "198.18.0.254:6443", "address to dial")
	return cmd
}

func newDemoCmd(dir *string) *cobra.Command {
	var (
		up lab.Options
		do = lab.DemoOptions{Namespace: "bgplb-demo", Service: "demo"}
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Bring the lab up when it is not, apply the demo manifests and show what happens",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := lab.Open(*dir)
			if err != nil {
				fmt.Printf("== Bringing the lab up (%d nodes): FRR router, client, control plane, nodes with kube-proxy and the lab kubelet\n", up.Nodes)
				up.Dir = *dir
				up.Logf = func(format string, args ...any) {
					fmt.Printf("%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
				}
				if l, err = lab.Up(cmd.Context(), up); err != nil {
					return err
				}
			} else {
				fmt.Printf("== Using the lab that is already up in %s\n", l.Dir)
			}
			if err := l.Demo(cmd.Context(), do, os.Stdout); err != nil {
				return err
			}
			fmt.Printf("\nThe lab stays up: kubectl --kubeconfig %s ...; bgplb-lab exec client -- curl ...; bgplb-lab down\n", l.Kubeconfig())
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&up.Nodes, "nodes", 3, "number of nodes when the lab has to be brought up")
	f.StringVar(&up.K8sBinDir, "k8s-bin-dir", "", "dir with kube-* and CNI plugin binaries (default $HOME/.cache/bgplb/bin)")
	f.StringVar(&up.BinDir, "bin-dir", "", "dir with bgplb-lab, podserver and bgplbd (default: this executable's dir)")
	f.StringVar(&do.Manifests, "manifests", "manifests/examples/demo", "dir of the demo's YAML files")
	f.StringVar(&do.CRDs, "crds", "manifests/base/crds", "dir of the bgplb CRDs to install first (skipped when missing)")
	return cmd
}
