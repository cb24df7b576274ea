package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/bpf"
	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/clusterview"
	"github.com/bgplb/bgplb/daemon/registry/api"
)

// check is one doctor finding; severity is one of clusterview's Severity* values.
type check struct {
	name     string
	severity string
	msg      string
}

// Shorthands for the severities.
const (
	sevOK   = clusterview.SeverityOK
	sevWarn = clusterview.SeverityWarning
	sevFail = clusterview.SeverityFailure
)

func newDoctorCmd(g *globals) *cobra.Command {
	cniConfDir := "/etc/cni/net.d"
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check this node: bpffs, daemon socket, CNI chaining, uplink program, BGP sessions",
		Long: "Check this node: bpffs, daemon socket, CNI chaining, uplink program, BGP sessions.\n\n" +
			"Exit codes: 0 every check passed, 1 warnings only (e.g. some sessions down), 2 at least one failure.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := clusterview.ValidateFormat(g.cluster.Output); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 15*time.Second)
			defer cancel()
			checks := runDoctor(ctx, g, cniConfDir)
			return printChecks(cmd.OutOrStdout(), g.cluster.Printer(), checks)
		},
	}
	cmd.Flags().StringVar(&cniConfDir, "cni-conf-dir", cniConfDir, "Directory of the node's CNI configuration.")
	return cmd
}

// printChecks prints the report and returns its exit status (clusterview.Report.Err).
func printChecks(out io.Writer, p clusterview.Printer, checks []check) error {
	r := clusterview.NewReport()
	for _, c := range checks {
		r.Add(c.name, c.severity, "%s", c.msg)
	}
	if err := p.Print(out, r); err != nil {
		return err
	}
	return r.Err()
}

func runDoctor(ctx context.Context, g *globals, cniConfDir string) []check {
	var out []check
	out = append(out, checkBPFFS(g.pinDir))
	if err := api.NewClient(g.socket).Ping(ctx); err != nil {
		out = append(out, check{"daemon socket", sevFail, fmt.Sprintf("%s: %v", g.socket, err)})
	} else {
		out = append(out, check{"daemon socket", sevOK, g.socket + " answers"})
	}
	out = append(out, checkCNIChained(cniConfDir))
	out = append(out, checkUplinks(g.pinDir))
	out = append(out, checkSessions(ctx, g))
	return out
}

func checkBPFFS(pinDir string) check {
	var st unix.Statfs_t
	dir := pinDir
	for {
		if err := unix.Statfs(dir, &st); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return check{"bpffs", sevFail, "cannot stat " + pinDir}
		}
		dir = parent
	}
	if st.Type != unix.BPF_FS_MAGIC {
		return check{"bpffs", sevFail, fmt.Sprintf("%s is not on a bpf filesystem (mount -t bpf bpf /sys/fs/bpf)", dir)}
	}
	if _, err := os.Stat(pinDir); err != nil {
		return check{"bpffs", sevFail, fmt.Sprintf("bpffs mounted but %s missing: the daemon has not created its maps", pinDir)}
	}
	return check{"bpffs", sevOK, pinDir + " is on bpffs"}
}

// checkCNIChained looks at the first conflist (the one the runtime uses) for a bgplb plugin.
func checkCNIChained(dir string) check {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return check{"CNI chaining", sevFail, err.Error()}
	}
	for _, e := range entries {
		if e.IsDir() || !(strings.HasSuffix(e.Name(), ".conflist") || strings.HasSuffix(e.Name(), ".conf")) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			return check{"CNI chaining", sevFail, err.Error()}
		}
		var conf struct {
			Name    string `json:"name"`
			Plugins []struct {
				Type string `json:"type"`
			} `json:"plugins"`
		}
		if err := json.Unmarshal(data, &conf); err != nil {
			return check{"CNI chaining", sevFail, fmt.Sprintf("%s: %v", path, err)}
		}
		for i, p := range conf.Plugins {
			if p.Type == "bgplb" {
				if i == 0 {
					return check{"CNI chaining", sevFail, path + ": bgplb is first; it must come after the primary plugin"}
				}
				return check{"CNI chaining", sevOK, fmt.Sprintf("%s: bgplb chained after %s", path, conf.Plugins[i-1].Type)}
			}
		}
		return check{"CNI chaining", sevFail, fmt.Sprintf("%s (used by the runtime) has no bgplb plugin", path)}
	}
	return check{"CNI chaining", sevFail, "no CNI configuration in " + dir}
}

func checkUplinks(pinDir string) check {
	links, _ := filepath.Glob(filepath.Join(pinDir, "links", "uplink_*")) // a bad pattern is impossible here
	if len(links) == 0 {
		return check{"uplink program", sevWarn, "no uplink link pinned in " + filepath.Join(pinDir, "links") + " (datapath disabled?)"}
	}
	var bad []string
	for _, l := range links {
		ok, ifindex, err := bpf.UplinkAttached(l)
		if err != nil || !ok {
			bad = append(bad, fmt.Sprintf("%s (attached=%v ifindex=%d err=%v)", filepath.Base(l), ok, ifindex, err))
		}
	}
	if len(bad) > 0 {
		return check{"uplink program", sevFail, "not attached: " + strings.Join(bad, "; ")}
	}
	return check{"uplink program", sevOK, fmt.Sprintf("%d uplink(s) attached", len(links))}
}

func checkSessions(ctx context.Context, g *globals) check {
	_, crd, err := g.clients()
	if err != nil {
		return check{"BGP sessions", sevFail, err.Error()}
	}
	ns, err := crd.BgplbV1alpha1().BGPNodeStates().Get(ctx, g.nodeName, metav1.GetOptions{})
	if err != nil {
		return check{"BGP sessions", sevFail, fmt.Sprintf("BGPNodeState %s: %v", g.nodeName, err)}
	}
	if len(ns.Status.Peers) == 0 {
		return check{"BGP sessions", sevWarn, "no BGPPeer selects this node"}
	}
	var down []string
	for _, p := range ns.Status.Peers {
		if p.State != v1alpha1.SessionEstablished {
			down = append(down, fmt.Sprintf("%s %s (%s)", p.Name, p.State, p.LastError))
		}
	}
	if len(down) > 0 {
		sev := sevWarn
		if len(down) == len(ns.Status.Peers) {
			sev = sevFail
		}
		return check{"BGP sessions", sev, fmt.Sprintf("%d of %d down: %s", len(down), len(ns.Status.Peers), strings.Join(down, "; "))}
	}
	return check{"BGP sessions", sevOK, fmt.Sprintf("%d established", len(ns.Status.Peers))}
}
