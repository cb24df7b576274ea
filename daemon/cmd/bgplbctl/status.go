package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/clusterview"
	"github.com/bgplb/bgplb/daemon/registry/api"
)

func newStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show this node's BGP sessions, the routes it originates (to which peers) and local endpoints",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			if err := clusterview.ValidateFormat(g.cluster.Output); err != nil {
				return err
			}
			if g.cluster.Output != clusterview.FormatTable {
				st, err := collectStatus(ctx, g)
				if perr := g.cluster.Printer().Print(cmd.OutOrStdout(), st); perr != nil {
					return perr
				}
				return err
			}
			return runStatus(ctx, g, cmd.OutOrStdout())
		},
	}
}

func runStatus(ctx context.Context, g *globals, out io.Writer) error {
	fmt.Fprintf(out, "Node: %s\n", g.nodeName)
	var firstErr error
	_, crd, err := g.clients()
	if err == nil {
		var ns *v1alpha1.BGPNodeState
		ns, err = crd.BgplbV1alpha1().BGPNodeStates().Get(ctx, g.nodeName, metav1.GetOptions{})
		if err == nil {
			printNodeState(out, ns)
		}
	}
	if err != nil {
		fmt.Fprintf(out, "\nBGPNodeState: unavailable: %v\n", err)
		firstErr = err
	}

	client := api.NewClient(g.socket)
	if routes, err := client.Routes(ctx); err != nil {
		fmt.Fprintf(out, "\nRoutes (socket %s): unavailable: %v\n", g.socket, err)
		if firstErr == nil {
			firstErr = err
		}
	} else {
		printRoutes(out, routes)
	}

	eps, err := client.List(ctx)
	fmt.Fprintln(out)
	if err != nil {
		fmt.Fprintf(out, "Local endpoints (socket %s): unavailable: %v\n", g.socket, err)
		if firstErr == nil {
			firstErr = err
		}
	} else {
		fmt.Fprintf(out, "Local endpoints registered by the CNI plugin (%d):\n", len(eps))
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  POD\tIPS\tHOST IF\tCONTAINER")
		for _, e := range eps {
			ips := make([]string, 0, len(e.IPs))
			for _, ip := range e.IPs {
				ips = append(ips, ip.String())
			}
			pod := e.PodNamespace + "/" + e.PodName
			if e.PodName == "" {
				pod = "-"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s(%d)\t%s\n", pod, strings.Join(ips, ","), e.HostIfName, e.HostIfIndex, short(e.ContainerID))
		}
		_ = tw.Flush() // writing to stdout
	}
	if vips, err := datapathVIPs(g.pinDir); err == nil {
		fmt.Fprintf(out, "\nVIPs marked in the datapath (%s): %s\n", g.pinDir, joinAddrs(vips))
	} else if !os.IsNotExist(err) {
		fmt.Fprintf(out, "\nDatapath (%s): unavailable: %v\n", g.pinDir, err)
	}
	return firstErr
}

func printNodeState(out io.Writer, ns *v1alpha1.BGPNodeState) {
	fmt.Fprintf(out, "\nBGP sessions (%d):\n", len(ns.Status.Peers))
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  PEER\tADDRESS\tASN (LOCAL/PEER)\tSTATE\tUP FOR\tSENT\tLAST ERROR")
	for _, p := range ns.Status.Peers {
		up := "-"
		if p.EstablishedSince != nil {
			up = time.Since(p.EstablishedSince.Time).Truncate(time.Second).String()
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d/%d\t%s\t%s\t%d\t%s\n", p.Name, p.Address, p.LocalASN, p.PeerASN, p.State, up, p.PrefixesSent, p.LastError)
	}
	_ = tw.Flush() // writing to stdout
	st := ns.Status
	fmt.Fprintf(out, "\nAnnounced prefixes: %d IPv4, %d IPv6\n", st.Announced.IPv4, st.Announced.IPv6)
	if d := st.Datapath; d != nil {
		fmt.Fprintf(out, "Datapath: %d registered endpoint(s), %d not ready", d.Endpoints, d.NotReady)
		if len(d.NotReadyPods) > 0 {
			fmt.Fprintf(out, " (%s)", strings.Join(d.NotReadyPods, ", "))
		}
		fmt.Fprintln(out)
	}
	for _, e := range st.Errors {
		fmt.Fprintf(out, "Error: %s\n", e)
	}
}

// printRoutes prints which peers get which prefix, as the node's speaker reports it.
func printRoutes(out io.Writer, routes []api.Route) {
	fmt.Fprintf(out, "\nRoutes originated by this node (%d):\n", len(routes))
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  PREFIX\tSERVICES\tPEERS")
	for _, r := range routes {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", r.Prefix, strings.Join(r.Services, ","), strings.Join(r.Peers, ","))
	}
	_ = tw.Flush() // writing to stdout
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
