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
	"github.com/bgplb/bgplb/daemon/registry/api"
)

// check is one doctor finding.
type check struct {
	name string
	ok   bool
	msg  string
}

func newDoctorCmd(g *globals) *cobra.Command {
	cniConfDir := "/etc/cni/net.d"
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check this node: bpffs, daemon socket, CNI chaining, uplink program, BGP sessions",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 15*time.Second)
			defer cancel()
			checks := runDoctor(ctx, g, cniConfDir)
			return printChecks(cmd.OutOrStdout(), checks)
		},
	}
	cmd.Flags().StringVar(&cniConfDir, "cni-conf-dir", cniConfDir, "Directory of the node's CNI configuration.")
	return cmd
}

func printChecks(out io.Writer, checks []check) error {
	failed := 0
	for _, c := range checks {
		mark := "ok  "
		if !c.ok {
			mark = "FAIL"
			failed++
		}
		fmt.Fprintf(out, "[%s] %s: %s\n", mark, c.name, c.msg)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d checks failed", failed, len(checks))
	}
	return nil
}

func runDoctor(ctx context.Context, g *globals, cniConfDir string) []check {
	var out []check
	out = append(out, checkBPFFS(g.pinDir))
	if err := api.NewClient(g.socket).Ping(ctx); err != nil {
		out = append(out, check{"daemon socket", false, fmt.Sprintf("%s: %v", g.socket, err)})
	} else {
		out = append(out, check{"daemon socket", true, g.socket + " answers"})
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
			return check{"bpffs", false, "cannot stat " + pinDir}
		}
		dir = parent
	}
	if st.Type != unix.BPF_FS_MAGIC {
		return check{"bpffs", false, fmt.Sprintf("%s is not on a bpf filesystem (mount -t bpf bpf /sys/fs/bpf)", dir)}
	}
	if _, err := os.Stat(pinDir); err != nil {
		return check{"bpffs", false, fmt.Sprintf("bpffs mounted but %s missing: the daemon has not created its maps", pinDir)}
	}
	return check{"bpffs", true, pinDir + " is on bpffs"}
}

// checkCNIChained looks at the first conflist (the one the runtime uses) for a bgplb plugin.
func checkCNIChained(dir string) check {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return check{"CNI chaining", false, err.Error()}
	}
	for _, e := range entries {
		if e.IsDir() || !(strings.HasSuffix(e.Name(), ".conflist") || strings.HasSuffix(e.Name(), ".conf")) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			return check{"CNI chaining", false, err.Error()}
		}
		var conf struct {
			Name    string `json:"name"`
			Plugins []struct {
				Type string `json:"type"`
			} `json:"plugins"`
		}
		if err := json.Unmarshal(data, &conf); err != nil {
			return check{"CNI chaining", false, fmt.Sprintf("%s: %v", path, err)}
		}
		for i, p := range conf.Plugins {
			if p.Type == "bgplb" {
				if i == 0 {
					return check{"CNI chaining", false, path + ": bgplb is first; it must come after the primary plugin"}
				}
				return check{"CNI chaining", true, fmt.Sprintf("%s: bgplb chained after %s", path, conf.Plugins[i-1].Type)}
			}
		}
		return check{"CNI chaining", false, fmt.Sprintf("%s (used by the runtime) has no bgplb plugin", path)}
	}
	return check{"CNI chaining", false, "no CNI configuration in " + dir}
}

func checkUplinks(pinDir string) check {
	links, _ := filepath.Glob(filepath.Join(pinDir, "links", "uplink_*")) // a bad pattern is impossible here
	if len(links) == 0 {
		return check{"uplink program", false, "no uplink link pinned in " + filepath.Join(pinDir, "links") + " (datapath disabled?)"}
	}
	var bad []string
	for _, l := range links {
		ok, ifindex, err := bpf.UplinkAttached(l)
		if err != nil || !ok {
			bad = append(bad, fmt.Sprintf("%s (attached=%v ifindex=%d err=%v)", filepath.Base(l), ok, ifindex, err))
		}
	}
	if len(bad) > 0 {
		return check{"uplink program", false, "not attached: " + strings.Join(bad, "; ")}
	}
	return check{"uplink program", true, fmt.Sprintf("%d uplink(s) attached", len(links))}
}

func checkSessions(ctx context.Context, g *globals) check {
	_, crd, err := g.clients()
	if err != nil {
		return check{"BGP sessions", false, err.Error()}
	}
	ns, err := crd.BgplbV1alpha1().BGPNodeStates().Get(ctx, g.nodeName, metav1.GetOptions{})
	if err != nil {
		return check{"BGP sessions", false, fmt.Sprintf("BGPNodeState %s: %v", g.nodeName, err)}
	}
	if len(ns.Status.Peers) == 0 {
		return check{"BGP sessions", false, "no BGPPeer selects this node"}
	}
	var down []string
	for _, p := range ns.Status.Peers {
		if p.State != v1alpha1.SessionEstablished {
			down = append(down, fmt.Sprintf("%s %s (%s)", p.Name, p.State, p.LastError))
		}
	}
	if len(down) > 0 {
		return check{"BGP sessions", false, fmt.Sprintf("%d of %d down: %s", len(down), len(ns.Status.Peers), strings.Join(down, "; "))}
	}
	return check{"BGP sessions", true, fmt.Sprintf("%d established", len(ns.Status.Peers))}
}
