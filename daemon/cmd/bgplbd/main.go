package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	logsapi "k8s.io/component-base/logs/api/v1"
	_ "k8s.io/component-base/logs/json/register" // --logging-format=json
	"k8s.io/klog/v2"

	"github.com/bgplb/bgplb/daemon/app"
	"github.com/bgplb/bgplb/daemon/features"
)

// version is set with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(cli.Run(newCommand()))
}

func newCommand() *cobra.Command {
	opts := app.NewOptions()
	logOpts := logsapi.NewLoggingConfiguration()
	cmd := &cobra.Command{
		Use:           "bgplbd",
		Short:         "bgplb node daemon: LB-IPAM, BGP announcements and the eBPF datapath",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logs.InitLogs()
			if err := logsapi.ValidateAndApply(logOpts, features.Gate); err != nil {
				return fmt.Errorf("apply logging options: %w", err)
			}
			cfg, err := opts.Config(version, cmd.Flags().Changed)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return app.Run(klog.NewContext(ctx, klog.Background()), cfg)
		},
	}
	opts.AddFlags(cmd.Flags())
	features.Gate.AddFlag(cmd.Flags())
	logsapi.AddFlags(logOpts, cmd.Flags())
	return cmd
}
