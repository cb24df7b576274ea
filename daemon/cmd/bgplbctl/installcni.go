package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bgplb/bgplb/bpf"
	"github.com/bgplb/bgplb/daemon/cnichain"
)

// Defaults of install-cni and uninstall-cni: the node's directories as the DaemonSet
// mounts them.
const (
	defaultCNIBinDir  = "/host/opt/cni/bin"
	defaultCNIConfDir = "/host/etc/cni/net.d"
)

func newInstallCNICmd() *cobra.Command {
	var src, binDir, confDir, pluginConf string
	datapath := true
	cmd := &cobra.Command{
		Use:   "install-cni",
		Short: "Copy the bgplb CNI plugin into the node's CNI bin dir and chain it last in the node's first CNI configuration (idempotent; --datapath=false unchains instead)",
		Long: "One pass of what bgplbd --cni-conf-dir does in a loop: copy the plugin (atomically), then chain it " +
			"last in the configuration the runtime uses (the lexicographically first .conf/.conflist/.json; a " +
			"single-plugin .conf becomes a .conflist). With --datapath=false it does not chain, and unchains " +
			"bgplb if it was chained (the original file comes back byte for byte when nothing else changed it).",
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if !datapath {
				res, err := cnichain.Unchain(confDir)
				if err != nil {
					return err
				}
				if res.Changed {
					fmt.Fprintf(out, "datapath off: unchained bgplb from %s\n", res.Path)
				} else {
					fmt.Fprintf(out, "datapath off: bgplb is not chained in %s\n", confDir)
				}
				return nil
			}
			if _, err := cnichain.InstallPlugin(src, binDir); err != nil {
				return err
			}
			var entry map[string]any
			if err := json.Unmarshal([]byte(pluginConf), &entry); err != nil {
				return fmt.Errorf("--plugin-conf: %w", err)
			}
			res, err := cnichain.Chain(confDir, entry)
			if err != nil {
				return err
			}
			if res.Changed {
				fmt.Fprintf(out, "chained bgplb into %s\n", res.Path)
			} else {
				fmt.Fprintf(out, "%s already chains bgplb\n", res.Path)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&src, "plugin", "/opt/bgplb/cni/bgplb", "Path of the plugin binary to install.")
	f.StringVar(&binDir, "cni-bin-dir", defaultCNIBinDir, "Node's CNI bin dir (as mounted).")
	f.StringVar(&confDir, "cni-conf-dir", defaultCNIConfDir, "Node's CNI conf dir (as mounted).")
	f.StringVar(&pluginConf, "plugin-conf", `{"type":"bgplb"}`, "JSON object: bgplb's entry in the conflist.")
	f.BoolVar(&datapath, "datapath", datapath, "false: bgplbd runs without the datapath, so do not chain (and unchain if chained).")
	return cmd
}

func newUninstallCNICmd() *cobra.Command {
	var binDir, confDir, pinDir string
	cmd := &cobra.Command{
		Use:   "uninstall-cni",
		Short: "Take bgplb off the node: unchain it, remove the plugin binary and the pinned eBPF maps and programs (idempotent)",
		Long: "Unchains bgplb (restoring the primary CNI's configuration byte for byte when nothing else changed it " +
			"since, otherwise removing only bgplb's entry), then removes the plugin binary, then the bpffs pin dir " +
			"(which detaches bgplb's programs). bgplbd does this itself when its DaemonSet is deleted; run it by " +
			"hand (with the node's paths) when bgplb was removed otherwise.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cnichain.Uninstall(confDir, binDir, pinDir); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "bgplb uninstalled: %s unchained, %s/bgplb and %s removed\n", confDir, binDir, pinDir)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&binDir, "cni-bin-dir", defaultCNIBinDir, "Node's CNI bin dir (as mounted); empty skips the binary.")
	f.StringVar(&confDir, "cni-conf-dir", defaultCNIConfDir, "Node's CNI conf dir (as mounted); empty skips unchaining.")
	f.StringVar(&pinDir, "bpf-pin-dir", bpf.DefaultPinDir, "bpffs directory of bgplb's pins (must be below a bpffs mount); empty skips it.")
	return cmd
}
