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
	m, err := openMaps(pinDir)
	if err != nil {
		return err
	}
	defer m.Close()
	svcs, err := m.Services()
	if err != nil {
		return err
	}
	bes, err := m.Backends()
	if err != nil {
		return err
	}
	byID := map[uint32]bpf.BackendEntry{}
	for _, b := range bes {
		byID[b.ID] = b
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FRONTEND\tID\tPOLICY\tBACKEND\tIFINDEX\tSTATE\tPACKETS\tBYTES")
	for _, s := range svcs {
		policy := "Cluster"
		if s.Service.Local {
			policy = "Local"
		}
		if s.Service.SourceRanges {
			policy += "+ranges"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t(frontend)\t\t\t%d\t%d\n", s.Key, s.Service.ID, policy, s.Stats.Packets, s.Stats.Bytes)
		if len(s.Backends) == 0 {
			fmt.Fprintf(tw, "\t\t\t(no local backend: %s)\t\t\t\t\n", map[bool]string{true: "drop", false: "to kernel"}[s.Service.Local])
		}
		for _, id := range s.Backends {
			b, ok := byID[id]
			if !ok {
				fmt.Fprintf(tw, "\t\t\t#%d (missing)\t\t\t\t\n", id)
				continue
			}
			state := "active"
			if b.Backend.Terminating {
				state = "terminating"
			}
			fmt.Fprintf(tw, "\t\t\t%s #%d\t%d\t%s\t%d\t%d\n", b.Backend.Addr, id, b.Backend.Ifindex, state, b.Stats.Packets, b.Stats.Bytes)
		}
	}
	_ = tw.Flush() // writing to stdout
	inSet := map[uint32]bool{}
	for _, s := range svcs {
		for _, id := range s.Backends {
			inSet[id] = true
		}
	}
	var draining []bpf.BackendEntry
	for _, b := range bes {
		if !inSet[b.ID] {
			draining = append(draining, b)
		}
	}
	if len(draining) > 0 {
		fmt.Fprintln(out, "\nBackends keeping established flows only (no new flows):")
		for _, b := range draining {
			fmt.Fprintf(out, "  %s #%d ifindex %d packets %d bytes %d\n", b.Backend.Addr, b.ID, b.Backend.Ifindex, b.Stats.Packets, b.Stats.Bytes)
		}
	}
	drops, err := m.Drops()
	if err != nil {
		return err
	}
	if len(drops) > 0 {
		fmt.Fprintln(out, "\nDrops:")
		for r, n := range drops {
			fmt.Fprintf(out, "  %s: %d\n", r, n)
		}
	}
	return nil
}
