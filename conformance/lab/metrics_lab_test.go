//go:build lab

package lab_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/conformance/lab"
	lbclient "github.com/bgplb/bgplb/daemon/client/clientset/versioned"
	"github.com/bgplb/bgplb/daemon/clusterview"

	"github.com/bgplb/bgplb/internal/poll"
)

// scrape returns the samples of one node's bgplbd /metrics: series (name{labels}) → value.
func scrape(ctx context.Context, n lab.Node) (map[string]float64, error) {
	hc := lab.NetNS(n.Netns).HTTPClient(5 * time.Second)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("parse %q: %w", line, err)
		}
		out[line[:i]] = v
	}
	_, _ = io.Copy(io.Discard, resp.Body) // drain for reuse
	return out, sc.Err()
}

func metricName(series string) string {
	if i := strings.IndexByte(series, '{'); i >= 0 {
		return series[:i]
	}
	return series
}

// TestLabMetricsForDashboard is issue 19's monitoring acceptance: with the demo deployed
// (a pool, the router peer, an ETP=Local Service with three pods, curled through the VIP
// by the client), every metric the Grafana dashboard's PromQL names (parsed by
// Prometheus' own parser in hack/dashboard) is exported by the lab's bgplbd daemons; the
// per-Service datapath counters count the demo's requests; the Service got VIPAnnounced
// and the nodes BGPSessionUp events; and the CLI's cluster view shows the Service as
// announced by the nodes that have its pods.
func TestLabMetricsForDashboard(t *testing.T) {
	dir := labDir(t)
	opts := labOptions(t, dir)
	opts.NoDaemon, opts.Nodes, opts.Router = false, 2, lab.RouterFRR
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	l, err := lab.Up(ctx, opts)
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	t.Cleanup(func() {
		if err := lab.Down(dir); err != nil {
			t.Errorf("down: %v", err)
		}
	})
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	var demo strings.Builder
	if err := l.Demo(ctx, lab.DemoOptions{Manifests: filepath.Join(root, "manifests/examples/demo"), Namespace: "bgplb-demo", Service: "demo"}, &demo); err != nil {
		t.Fatalf("demo: %v\n%s", err, demo.String())
	}

	// The dashboard's metric names, from Prometheus' parser.
	gorun := exec.CommandContext(ctx, "go", "-C", filepath.Join(root, "hack/dashboard"), "run", ".", filepath.Join(root, "manifests/monitoring/grafana-dashboard.json"))
	gorun.Stderr = os.Stderr
	out, err := gorun.Output()
	if err != nil {
		t.Fatalf("hack/dashboard: %v", err)
	}
	want := strings.Fields(string(out))
	if len(want) < 10 {
		t.Fatalf("hack/dashboard listed only %v", want)
	}

	// What the daemons export (the pool series only on the leader): poll until every name
	// is there, the demo's requests are counted and the events are written.
	cfg, err := l.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	cs, err := l.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	lbc, err := lbclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 90*time.Second, every, "dashboard metrics exported, demo traffic counted, events written", func() error {
		names := map[string]bool{}
		var packets float64
		for _, n := range l.Nodes {
			samples, err := scrape(ctx, n)
			if err != nil {
				return fmt.Errorf("scrape %s: %w", n.Name, err)
			}
			for s, v := range samples {
				names[metricName(s)] = true
				if strings.HasPrefix(s, "bgplb_datapath_service_packets_total{") && strings.Contains(s, `service="bgplb-demo/demo"`) {
					packets += v
				}
			}
		}
		var missing []string
		for _, w := range want {
			if !names[w] {
				missing = append(missing, w)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("the dashboard uses metrics no daemon exports: %v", missing)
		}
		if packets == 0 {
			return fmt.Errorf("bgplb_datapath_service_packets_total{service=\"bgplb-demo/demo\"} is 0 on every node after the demo's requests")
		}
		evs, err := cs.CoreV1().Events("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, e := range evs.Items {
			if e.Source.Component == "bgplb" {
				seen[e.Reason+" "+e.InvolvedObject.Kind] = true
			}
		}
		for _, r := range []string{"VIPAnnounced Service", "BGPSessionUp Node"} {
			if !seen[r] {
				return fmt.Errorf("no %s event from bgplb (have %v)", r, seen)
			}
		}
		t.Logf("dashboard: %d metric names, all exported; demo packets through the datapath: %v; events: %v", len(want), packets, seen)
		return nil
	})

	// The cluster view against the lab's real daemons.
	c := clusterview.Clients{Kube: cs, CRD: lbc}
	poll.Eventually(t, 60*time.Second, every, "services shows the demo announced", func() error {
		svcs, err := clusterview.Services(ctx, c, "bgplb-demo", "bgplb.io/bgp")
		if err != nil {
			return err
		}
		if len(svcs.Items) != 1 || !svcs.Items[0].Announced || len(svcs.Items[0].VIPs) == 0 || len(svcs.Items[0].Nodes) == 0 ||
			!slices.Contains(svcs.Items[0].Pools, "demo") {
			return fmt.Errorf("services: %+v", svcs.Items)
		}
		sessions, err := clusterview.Sessions(ctx, c, "")
		if err != nil {
			return err
		}
		up := 0
		for _, s := range sessions.Items {
			if s.State == "Established" {
				up++
			}
		}
		if up != len(l.Nodes) {
			return fmt.Errorf("sessions: %d established, want %d: %+v", up, len(l.Nodes), sessions.Items)
		}
		t.Logf("services: %+v; sessions: %d established", svcs.Items[0], up)
		return nil
	})
}
