//go:build bench

package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/bgplb/bgplb/conformance/lab"
	"github.com/bgplb/bgplb/daemon/app"
)

// parseNodeEnv parses -bench.scale-node-env: node=VAR=value[,VAR=value][;node=...].
func parseNodeEnv(s string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, part := range strings.Split(s, ";") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		node, vars, ok := strings.Cut(part, "=")
		if !ok || node == "" || vars == "" {
			return nil, fmt.Errorf("-bench.scale-node-env: %q is not node=VAR=value", part)
		}
		for _, v := range strings.Split(vars, ",") {
			if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
				return nil, fmt.Errorf("-bench.scale-node-env: %q is not VAR=value", v)
			}
			out[node] = append(out[node], v)
		}
	}
	return out, nil
}

// effectiveEnv is bgplbd's environment on a node: lab.DaemonEnv with extra after it
// (the later value of a variable wins, in os/exec as in this list).
func effectiveEnv(extra []string) []string {
	var out []string
	for _, kv := range append(slices.Clone(lab.DaemonEnv), extra...) {
		k, _, _ := strings.Cut(kv, "=")
		out = slices.DeleteFunc(out, func(o string) bool { return strings.HasPrefix(o, k+"=") })
		out = append(out, kv)
	}
	return out
}

// startDaemonEnv starts bgplbd on node with extra added to lab.DaemonEnv.
func startDaemonEnv(ctx context.Context, l *lab.Lab, node string, extra []string) error {
	saved := lab.DaemonEnv
	defer func() { lab.DaemonEnv = saved }()
	lab.DaemonEnv = effectiveEnv(extra)
	return l.StartDaemon(ctx, node)
}

// envNote describes bgplbd's environment per node for the results.
func envNote(nodes []string, nodeEnv map[string][]string) string {
	note := strings.Join(lab.DaemonEnv, " ") + " as in the DaemonSet"
	var cmp []string
	for _, n := range nodes {
		if extra, ok := nodeEnv[n]; ok {
			cmp = append(cmp, fmt.Sprintf("%s %s", n, strings.Join(effectiveEnv(extra), " ")))
		}
	}
	if len(cmp) == 0 {
		return note
	}
	return note + " (for comparison: " + strings.Join(cmp, "; ") + ")"
}

// budgetScope says which nodes the RSS budget was checked on.
func budgetScope(nodeEnv map[string][]string) string {
	if len(nodeEnv) == 0 {
		return ""
	}
	return " (nodes with the DaemonSet's environment)"
}

// scaleLeader returns the holder of the LB-IPAM Lease.
func scaleLeader(ctx context.Context, t *testing.T, kc kubernetes.Interface) string {
	t.Helper()
	lease, err := kc.CoordinationV1().Leases(lab.DaemonNamespace).Get(ctx, app.DefaultLeaseName, metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil {
		t.Logf("LB-IPAM lease: %v", err)
		return "unknown"
	}
	return *lease.Spec.HolderIdentity
}
