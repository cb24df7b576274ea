package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/bgplb/bgplb/daemon/clusterview"
)

// version is set with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(clusterview.Main(newRoot(clusterview.NewOptions()), os.Stderr))
}

func newRoot(o *clusterview.Options) *cobra.Command {
	root := &cobra.Command{
		Use:           "kubectl bgplb",
		Short:         "Inspect bgplb across the cluster: Services, BGP sessions, pools, doctor, and a node's bgplbd",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl bgplb"},
	}
	o.AddKubeconfigFlag(root.PersistentFlags())
	o.AddFlags(root.PersistentFlags())
	o.AddOutputFlag(root.PersistentFlags())
	root.AddCommand(clusterview.Commands(o, "doctor")...)
	return root
}
