package clusterview

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/client/clientset/versioned"
)

// requestTimeout bounds one command's API calls (not a node exec, which runs until the
// remote bgplbctl ends).
const requestTimeout = 30 * time.Second

// Options are the flags of the cluster commands.
type Options struct {
	// Kubeconfig is the kubeconfig path ("" : $KUBECONFIG, ~/.kube/config, in-cluster).
	Kubeconfig string
	// Overrides are kubectl's --context, --namespace, --server, ... flags.
	Overrides clientcmd.ConfigOverrides
	// BgplbNamespace is the namespace of the bgplbd DaemonSet.
	BgplbNamespace string
	// Class is bgplb's loadBalancerClass.
	Class string
	// Output is -o: table, json or yaml.
	Output string
	// Now is the clock of tables' relative times (time.Now when nil).
	Now func() time.Time

	namespaceSet bool
}

// NewOptions returns the defaults.
func NewOptions() *Options {
	return &Options{BgplbNamespace: "bgplb-system", Class: v1alpha1.DefaultLoadBalancerClass, Output: FormatTable}
}

// AddKubeconfigFlag adds --kubeconfig (bgplbctl has its own).
func (o *Options) AddKubeconfigFlag(fs *pflag.FlagSet) {
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "Path to the kubeconfig file (default $KUBECONFIG, ~/.kube/config, else in-cluster).")
}

// AddFlags adds kubectl's connection flags (--context, -n/--namespace, --server, ...),
// --bgplb-namespace and --class.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	clientcmd.BindOverrideFlags(&o.Overrides, fs, clientcmd.RecommendedConfigOverrideFlags(""))
	fs.StringVar(&o.BgplbNamespace, "bgplb-namespace", o.BgplbNamespace, "Namespace of the bgplbd DaemonSet.")
	fs.StringVar(&o.Class, "class", o.Class, "loadBalancerClass of bgplb's Services.")
}

// AddOutputFlag adds -o/--output.
func (o *Options) AddOutputFlag(fs *pflag.FlagSet) {
	fs.StringVarP(&o.Output, "output", "o", o.Output, "Output format: table, json or yaml.")
}

// RESTConfig loads the client configuration.
func (o *Options) RESTConfig() (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.Kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &o.Overrides).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	cfg.UserAgent = "bgplb-cli"
	return cfg, nil
}

func (o *Options) clients() (Clients, *rest.Config, error) {
	cfg, err := o.RESTConfig()
	if err != nil {
		return Clients{}, nil, err
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return Clients{}, nil, fmt.Errorf("create kubernetes client: %w", err)
	}
	crd, err := versioned.NewForConfig(cfg)
	if err != nil {
		return Clients{}, nil, fmt.Errorf("create bgplb client: %w", err)
	}
	return Clients{Kube: kube, CRD: crd}, cfg, nil
}

// Printer returns the printer of -o.
func (o *Options) Printer() Printer { return Printer{Format: o.Output, Now: o.Now} }

// run validates -o, builds the clients and runs fn with a bounded context.
func (o *Options) run(cmd *cobra.Command, fn func(ctx context.Context, c Clients) (any, error)) error {
	if err := ValidateFormat(o.Output); err != nil {
		return err
	}
	o.namespaceSet = cmd.Flags().Changed("namespace")
	c, _, err := o.clients()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), requestTimeout)
	defer cancel()
	v, err := fn(ctx, c)
	if v != nil {
		if perr := o.Printer().Print(cmd.OutOrStdout(), v); perr != nil {
			return perr
		}
	}
	return err
}

// Commands returns the cluster commands: services, sessions (alias peers), pools,
// doctor and node. doctorName names the doctor command (bgplbctl has a node doctor).
func Commands(o *Options, doctorName string) []*cobra.Command {
	services := &cobra.Command{
		Use:   "services",
		Short: "bgplb Services: VIPs, pools, announcing nodes, and why a Service is not announced",
		Long: "List the Services of bgplb's loadBalancerClass in every namespace (or -n NAMESPACE) with their VIPs, the pools\n" +
			"holding them, whether they are announced and by which nodes (the bgplb.io/Announced condition names up to a few\n" +
			"nodes and counts the rest) and, when not, the condition's reason and message.\n\nExit codes: 0 ok, 1 error.",
		Aliases: []string{"svc"},
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd, func(ctx context.Context, c Clients) (any, error) {
				ns := ""
				if o.namespaceSet {
					ns = o.Overrides.Context.Namespace
				}
				return nilIfErr(Services(ctx, c, ns, o.Class))
			})
		},
	}
	sessions := &cobra.Command{
		Use:     "sessions [NODE]",
		Aliases: []string{"peers"},
		Short:   "BGP sessions of every node (or NODE) from the BGPNodeStates",
		Long:    "List each node's BGP sessions: peer, address, ASNs, FSM state, time since established, prefixes sent and\nreceived, and the last error. Nodes without a BGPNodeState are listed too.\n\nExit codes: 0 ok, 1 error.",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			node := ""
			if len(args) == 1 {
				node = args[0]
			}
			return o.run(cmd, func(ctx context.Context, c Clients) (any, error) {
				return nilIfErr(Sessions(ctx, c, node))
			})
		},
	}
	pools := &cobra.Command{
		Use:   "pools",
		Short: "LoadBalancerIPPools with readiness, usage and the Services using them",
		Long:  "List the LoadBalancerIPPools with their blocks, Ready condition, used/total addresses per family (from the\nstatus the LB-IPAM leader writes) and the number of bgplb Services holding an address of each.\n\nExit codes: 0 ok, 1 error.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd, func(ctx context.Context, c Clients) (any, error) {
				return nilIfErr(Pools(ctx, c, o.Class))
			})
		},
	}
	doctor := &cobra.Command{
		Use:   doctorName,
		Short: "Check the cluster: bgplbd pods, BGPPeers, sessions, pools, Services",
		Long: "Check the bgplbd DaemonSet, the BGPPeers, every node's sessions, the pools (ready, under 90% used) and the\n" +
			"Services (every one with a VIP and announced).\n\nExit codes: 0 every check passed, 1 warnings only, 2 at least one failure (an unreachable API server is one).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := ValidateFormat(o.Output); err != nil {
				return err
			}
			c, _, err := o.clients()
			if err != nil {
				return &ExitCodeError{Code: ExitFailures, Err: err}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), requestTimeout)
			defer cancel()
			r := Doctor(ctx, c, DoctorOptions{Namespace: o.BgplbNamespace, Class: o.Class})
			if err := o.Printer().Print(cmd.OutOrStdout(), r); err != nil {
				return err
			}
			return r.Err()
		},
	}
	node := &cobra.Command{
		Use:   "node NODE [BGPLBCTL-ARGS...]",
		Short: "Run bgplbctl in NODE's bgplbd pod (default: status): node-local sessions, routes, datapath",
		Long: "Run `bgplbctl BGPLBCTL-ARGS` (default `status`) in the bgplbd container of the pod on NODE, through the API\n" +
			"server's exec subresource like kubectl exec (needs create on pods/exec in --bgplb-namespace). Examples:\n" +
			"  node node1 status -o json     sessions, routes per peer, registered endpoints, datapath VIPs\n" +
			"  node node1 lb list            the eBPF frontend/backend table with packet and byte counters\n" +
			"  node node1 doctor             the node checks (bpffs, socket, CNI chaining, uplink, sessions)\n\n" +
			"Exit codes: those of the remote bgplbctl (doctor: 0 ok, 1 warnings, 2 failures); 1 when the pod cannot be reached.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, cfg, err := o.clients()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), requestTimeout)
			pod, err := NodePod(ctx, c.Kube, o.BgplbNamespace, args[0])
			cancel()
			if err != nil {
				return err
			}
			rest := args[1:]
			if len(rest) == 0 {
				rest = []string{"status"}
			}
			return ExecBgplbctl(cmd.Context(), cfg, c.Kube, pod, rest, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	// Everything after NODE goes to the remote bgplbctl, flags included.
	node.Flags().SetInterspersed(false)
	return []*cobra.Command{services, sessions, pools, doctor, node}
}

func nilIfErr[T any](v *T, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return v, nil
}

// ExitCode maps a command's error to the process exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ec *ExitCodeError
	if errors.As(err, &ec) {
		return ec.Code
	}
	return ExitError
}

// Main runs root and returns the exit code (ExitCode); the error goes to stderr as
// "error: ...".
func Main(root *cobra.Command, stderr io.Writer) int {
	err := root.Execute()
	if err != nil {
		fmt.Fprintln(stderr, "error:", err)
	}
	return ExitCode(err)
}
