package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
)

func newInstallCNICmd() *cobra.Command {
	var src, binDir, confDir string
	var pluginConf string
	datapath := true
	cmd := &cobra.Command{
		Use:   "install-cni",
		Short: "Copy the bgplb CNI plugin into the node's CNI bin dir and chain it into the node's conflist (idempotent)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !datapath {
				// bgplbd --datapath=false: kube-proxy serves the VIPs, and the plugin
				// must not be in the pods' path at all.
				path, changed, err := unchainPlugin(confDir)
				if err != nil {
					return err
				}
				if changed {
					fmt.Fprintf(cmd.OutOrStdout(), "removed bgplb from %s (--datapath=false)\n", path)
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "%s does not chain bgplb (--datapath=false)\n", path)
				}
				return nil
			}
			if err := installPlugin(src, binDir); err != nil {
				return err
			}
			var entry map[string]any
			if err := json.Unmarshal([]byte(pluginConf), &entry); err != nil {
				return fmt.Errorf("--plugin-conf: %w", err)
			}
			path, changed, err := chainPlugin(confDir, entry)
			if err != nil {
				return err
			}
			if changed {
				fmt.Fprintf(cmd.OutOrStdout(), "chained bgplb into %s\n", path)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "%s already chains bgplb\n", path)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&src, "plugin", "/opt/bgplb/cni/bgplb", "Path of the plugin binary to install.")
	f.StringVar(&binDir, "cni-bin-dir", "/host/opt/cni/bin", "Node's CNI bin dir (as mounted).")
	f.StringVar(&confDir, "cni-conf-dir", "/host/etc/cni/net.d", "Node's CNI conf dir (as mounted).")
	f.StringVar(&pluginConf, "plugin-conf", `{"type":"bgplb"}`, "JSON object appended to the conflist's plugins.")
	f.BoolVar(&datapath, "datapath", datapath, "false (as bgplbd --datapath=false): do not chain the plugin, and remove it from the conflist if an earlier run chained it.")
	return cmd
}

// installPlugin copies src to binDir/bgplb atomically (temp file + rename).
func installPlugin(src, binDir string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("open plugin %s: %w", src, err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(binDir, ".bgplb-*")
	if err != nil {
		return fmt.Errorf("create temp file in %s: %w", binDir, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return fmt.Errorf("copy plugin to %s: %w", binDir, err)
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return fmt.Errorf("chmod plugin: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write plugin: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(binDir, "bgplb")); err != nil {
		return fmt.Errorf("install plugin: %w", err)
	}
	return nil
}

// unchainPlugin removes every plugin of type bgplb from the first conflist in confDir
// (the one chainPlugin writes), keeping everything else; it reports whether it changed
// the file. No conflist, or one without bgplb, is no change.
func unchainPlugin(confDir string) (string, bool, error) {
	path, conf, plugins, err := firstConflist(confDir)
	if err != nil || conf == nil {
		return path, false, err
	}
	kept := plugins[:0:0]
	for _, p := range plugins {
		if m, ok := p.(map[string]any); ok && m["type"] == "bgplb" {
			continue
		}
		kept = append(kept, p)
	}
	if len(kept) == len(plugins) {
		return path, false, nil
	}
	conf["plugins"] = kept
	return path, true, writeConflist(path, conf)
}

// firstConflist reads the first CNI configuration file in confDir (by name, as runtimes
// pick it). conf is nil when it is not a conflist.
func firstConflist(confDir string) (path string, conf map[string]any, plugins []any, err error) {
	entries, err := os.ReadDir(confDir)
	if err != nil {
		return "", nil, nil, fmt.Errorf("read %s: %w", confDir, err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && (strings.HasSuffix(e.Name(), ".conflist") || strings.HasSuffix(e.Name(), ".conf") || strings.HasSuffix(e.Name(), ".json")) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return confDir, nil, nil, nil
	}
	path = filepath.Join(confDir, names[0])
	data, err := os.ReadFile(path)
	if err != nil {
		return path, nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(data, &conf); err != nil {
		return path, nil, nil, fmt.Errorf("parse %s: %w", path, err)
	}
	plugins, ok := conf["plugins"].([]any)
	if !ok {
		return path, nil, nil, nil
	}
	return path, conf, plugins, nil
}

// writeConflist rewrites path with conf atomically.
func writeConflist(path string, conf map[string]any) error {
	out, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	tmp := path + ".bgplb-tmp"
	if err := os.WriteFile(tmp, append(out, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}

// chainPlugin appends entry to the plugins of the first conflist in confDir (the one the
// runtime uses), unless a plugin of type bgplb is already there. It keeps every other field
// as it is and rewrites the file atomically.
func chainPlugin(confDir string, entry map[string]any) (string, bool, error) {
	path, conf, plugins, err := firstConflist(confDir)
	switch {
	case err != nil:
		return "", false, err
	case path == confDir:
		return "", false, fmt.Errorf("no CNI configuration in %s: install the primary CNI first", confDir)
	case conf == nil:
		return "", false, fmt.Errorf("%s is not a conflist (no plugins list); chaining needs one", path)
	}
	for _, p := range plugins {
		if m, ok := p.(map[string]any); ok && m["type"] == "bgplb" {
			return path, false, nil
		}
	}
	conf["plugins"] = append(plugins, entry)
	if err := writeConflist(path, conf); err != nil {
		return "", false, err
	}
	return path, true, nil
}
