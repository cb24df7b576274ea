package main

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/bgplb/bgplb/bpf"
	"github.com/bgplb/bgplb/daemon/clusterview"
)

func newLBCmd(g *globals) *cobra.Command {
	lb := &cobra.Command{Use: "lb", Short: "Inspect the eBPF datapath maps"}
	lb.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List frontends (VIP:port/proto) with their backends and counters",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := clusterview.ValidateFormat(g.cluster.Output); err != nil {
				return err
			}
			if g.cluster.Output != clusterview.FormatTable {
				return printLBList(g.pinDir, g.cluster.Printer(), cmd.OutOrStdout())
			}
			return runLBList(g.pinDir, cmd.OutOrStdout())
		},
	})
	return lb
}

func openMaps(pinDir string) (*bpf.Maps, error) {
	if _, err := os.Stat(pinDir); err != nil {
		return nil, err
	}
	m, err := bpf.OpenMaps(pinDir)
	if err != nil {
		return nil, fmt.Errorf("open maps in %s: %w", pinDir, err)
	}
	return m, nil
}

func datapathVIPs(pinDir string) ([]netip.Addr, error) {
	m, err := openMaps(pinDir)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	return m.VIPs()
}

func joinAddrs(as []netip.Addr) string {
	if len(as) == 0 {
		return "none"
	}
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

func runLBList(pinDir string, out io.Writer) error {
	l, err := readLBList(pinDir)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FRONTEND\tID\tPOLICY\tBACKEND\tIFINDEX\tSTATE\tPACKETS\tBYTES")
	for _, f := range l.Frontends {
		policy := "Cluster"
		if f.Local {
			policy = "Local"
		}
		if f.Ranges {
			policy += "+ranges"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t(frontend)\t\t\t%d\t%d\n", f.Frontend, f.ID, policy, f.Packets, f.Bytes)
		if len(f.Backends) == 0 {
			fmt.Fprintf(tw, "\t\t\t(no local backend: %s)\t\t\t\t\n", map[bool]string{true: "drop", false: "to kernel"}[f.Local])
		}
		for _, b := range f.Backends {
			if b.Address == "" {
				fmt.Fprintf(tw, "\t\t\t#%d (missing)\t\t\t\t\n", b.ID)
				continue
			}
			state := "active"
			if b.Terminating {
				state = "terminating"
			}
			fmt.Fprintf(tw, "\t\t\t%s #%d\t%d\t%s\t%d\t%d\n", b.Address, b.ID, b.Ifindex, state, b.Packets, b.Bytes)
		}
	}
	_ = tw.Flush() // writing to stdout
	if len(l.Draining) > 0 {
		fmt.Fprintln(out, "\nBackends keeping established flows only (no new flows):")
		for _, b := range l.Draining {
			fmt.Fprintf(out, "  %s #%d ifindex %d packets %d bytes %d\n", b.Address, b.ID, b.Ifindex, b.Packets, b.Bytes)
		}
	}
	if len(l.Drops) > 0 {
		fmt.Fprintln(out, "\nDrops:")
		for r, n := range l.Drops {
			fmt.Fprintf(out, "  %s: %d\n", r, n)
		}
	}
	return nil
}
