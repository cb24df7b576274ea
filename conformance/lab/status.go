package lab

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ProcessStatus is one recorded lab process.
type ProcessStatus struct {
	Name  string
	PID   int
	Alive bool
	// RSS is the resident set size in bytes (0 when not alive).
	RSS int64
}

// Processes lists the processes recorded under the lab dir.
func (l *Lab) Processes() ([]ProcessStatus, error) {
	procs, err := recordedProcesses(l.Dir)
	out := make([]ProcessStatus, 0, len(procs))
	for _, p := range procs {
		ps := ProcessStatus{Name: p.Name, PID: p.PID, Alive: p.alive()}
		if ps.Alive {
			ps.RSS = rss(p.PID)
		}
		out = append(out, ps)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// PrintStatus writes the lab's namespaces, processes, node readiness and the router's
// BGP summary to w. It reports what it cannot read instead of failing.
func (l *Lab) PrintStatus(ctx context.Context, w io.Writer) {
	fmt.Fprintf(w, "lab dir: %s (up since %s, %d nodes, ipv6=%v, proxy=%s)\n", l.Dir,
		l.Started.Format(time.RFC3339), len(l.Nodes), l.Opts.IPv6, proxyDesc(l.Opts))
	fmt.Fprintf(w, "kubeconfig: %s\n\nnamespaces:\n", l.Kubeconfig())
	nss, err := LabNetns()
	if err != nil {
		fmt.Fprintf(w, "  error: %v\n", err)
	}
	for _, ns := range nss {
		fmt.Fprintf(w, "  %s\n", ns)
	}
	fmt.Fprintf(w, "\nprocesses:\n")
	procs, err := l.Processes()
	if err != nil {
		fmt.Fprintf(w, "  error: %v\n", err)
	}
	var total int64
	for _, p := range procs {
		state := "alive"
		if !p.Alive {
			state = "DEAD"
		}
		total += p.RSS
		fmt.Fprintf(w, "  %-48s %7d  %-5s %6.1f MiB\n", p.Name, p.PID, state, float64(p.RSS)/(1<<20))
	}
	fmt.Fprintf(w, "  total RSS of lab processes: %.1f MiB\n", float64(total)/(1<<20))
	fmt.Fprintf(w, "\nnodes:\n")
	cs, err := l.Clientset()
	if err == nil {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		nodes, lerr := cs.CoreV1().Nodes().List(cctx, metav1.ListOptions{})
		if lerr != nil {
			err = lerr
		} else {
			for i := range nodes.Items {
				n := &nodes.Items[i]
				ready := "NotReady"
				if NodeReady(n) {
					ready = "Ready"
				}
				var addrs []string
				for _, a := range n.Status.Addresses {
					addrs = append(addrs, a.Address)
				}
				fmt.Fprintf(w, "  %-10s %-9s %s podCIDRs=%s\n", n.Name, ready, strings.Join(addrs, ","),
					strings.Join(n.Spec.PodCIDRs, ","))
			}
		}
	}
	if err != nil {
		fmt.Fprintf(w, "  error: %v\n", err)
	}
	fmt.Fprintf(w, "\nrouter (%s, AS %d) BGP summary:\n", l.Opts.Router, RouterASN)
	out, err := l.RouterSummary(ctx)
	if err != nil {
		fmt.Fprintf(w, "  error: %v\n", err)
	} else {
		fmt.Fprintf(w, "%s\n", out)
	}
}

func proxyDesc(o Options) string {
	if o.NoKubeProxy {
		return "none"
	}
	return o.ProxyMode
}

// rss returns the resident set size of pid in bytes, 0 when unknown.
func rss(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}
