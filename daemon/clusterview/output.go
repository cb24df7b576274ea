package clusterview

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"sigs.k8s.io/yaml"
)

// Output formats of -o.
const (
	FormatTable = "table"
	FormatJSON  = "json"
	FormatYAML  = "yaml"
)

// Exit codes of the CLI (documented in the commands' help and docs/cli.md).
const (
	ExitOK       = 0 // success; doctor: every check passed
	ExitError    = 1 // the command failed (bad flags, API unreachable, ...); doctor: warnings only
	ExitFailures = 2 // doctor: at least one check failed
)

// ExitCodeError carries a process exit code with its message; main exits with Code.
type ExitCodeError struct {
	Code int
	Err  error
}

func (e *ExitCodeError) Error() string { return e.Err.Error() }
func (e *ExitCodeError) Unwrap() error { return e.Err }

// ValidateFormat checks an -o value.
func ValidateFormat(f string) error {
	switch f {
	case FormatTable, FormatJSON, FormatYAML:
		return nil
	}
	return fmt.Errorf("unknown output format %q: want table, json or yaml", f)
}

// Printer writes a view in one format.
type Printer struct {
	Format string
	// Now is the current time for relative durations in tables (time.Now when nil).
	Now func() time.Time
}

func (p Printer) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// Print writes v (a *ServiceList, *SessionList, *PoolList or *Report) to out.
func (p Printer) Print(out io.Writer, v any) error {
	switch p.Format {
	case FormatJSON:
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Errorf("encode json: %w", err)
		}
		_, err = fmt.Fprintf(out, "%s\n", b)
		return err
	case FormatYAML:
		b, err := yaml.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode yaml: %w", err)
		}
		_, err = out.Write(b)
		return err
	case FormatTable, "":
	default:
		return ValidateFormat(p.Format)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	switch v := v.(type) {
	case *ServiceList:
		p.services(tw, v)
	case *SessionList:
		p.sessions(tw, v)
	case *PoolList:
		p.pools(tw, v)
	case *Report:
		p.report(tw, v)
	default:
		return fmt.Errorf("no table for %T", v)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func list(s []string) string { return dash(strings.Join(s, ",")) }

func (p Printer) services(w io.Writer, l *ServiceList) {
	fmt.Fprintln(w, "NAMESPACE\tNAME\tVIPS\tPOOLS\tANNOUNCED\tNODES\tREASON\tMESSAGE")
	for _, s := range l.Items {
		ann, reason := "no", s.Reason
		if !s.Allocated {
			reason = s.AllocationReason
		}
		nodes := "-"
		if s.Announced {
			ann = "yes"
			nodes = list(s.Nodes)
			if more := s.NodeCount - len(s.Nodes); more > 0 {
				nodes += fmt.Sprintf(" (+%d)", more)
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Namespace, s.Name, list(s.VIPs), list(s.Pools), ann, nodes, dash(reason), dash(s.Message))
	}
}

func (p Printer) sessions(w io.Writer, l *SessionList) {
	fmt.Fprintln(w, "NODE\tPEER\tADDRESS\tASN (LOCAL/PEER)\tSTATE\tUP FOR\tSENT\tRECEIVED\tLAST ERROR")
	for _, s := range l.Items {
		up := "-"
		if s.EstablishedSince != nil {
			up = p.now().Sub(*s.EstablishedSince).Truncate(time.Second).String()
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d/%d\t%s\t%s\t%d\t%d\t%s\n", s.Node, s.Peer, dash(s.Address), s.LocalASN, s.PeerASN,
			dash(s.State), up, s.PrefixesSent, s.PrefixesReceived, dash(s.LastError))
	}
	for _, n := range l.NodesWithoutState {
		fmt.Fprintf(w, "%s\t-\t-\t-\t-\t-\t-\t-\tno BGPNodeState: bgplbd has not run on this node\n", n)
	}
}

func usage(u *Usage) string {
	if u == nil {
		return "-"
	}
	return fmt.Sprintf("%d/%d", u.Used, u.Total)
}

// percentUsed is the fuller family's used share in percent (-1: no counts).
func (pl Pool) percentUsed() int {
	best := -1
	for _, u := range []*Usage{pl.IPv4, pl.IPv6} {
		if u == nil || u.Total <= 0 {
			continue
		}
		best = max(best, int(u.Used*100/u.Total))
	}
	return best
}

func (p Printer) pools(w io.Writer, l *PoolList) {
	fmt.Fprintln(w, "NAME\tBLOCKS\tREADY\tIPV4 USED/TOTAL\tIPV6 USED/TOTAL\tUSED\tSERVICES\tMESSAGE")
	for _, pl := range l.Items {
		ready := "yes"
		if !pl.Ready {
			ready = "no (" + pl.Reason + ")"
		}
		if pl.Disabled {
			ready += ", disabled"
		}
		pct := "-"
		if v := pl.percentUsed(); v >= 0 {
			pct = fmt.Sprintf("%d%%", v)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", pl.Name, list(pl.Blocks), ready, usage(pl.IPv4), usage(pl.IPv6), pct, pl.Services, dash(pl.Message))
	}
}

func (p Printer) report(w io.Writer, r *Report) {
	fmt.Fprintln(w, "SEVERITY\tCHECK\tRESULT")
	for _, c := range r.Checks {
		fmt.Fprintf(w, "%s\t%s\t%s\n", c.Severity, c.Name, c.Message)
	}
	fmt.Fprintf(w, "\n%d ok, %d warning(s), %d failure(s)\n", r.OK, r.Warnings, r.Failures)
}
