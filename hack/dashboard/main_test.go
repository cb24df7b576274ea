package main

import (
	"os"
	"slices"
	"strings"
	"testing"
)

const dashboardPath = "../../manifests/monitoring/grafana-dashboard.json"

// TestDashboardParses: every query of bgplb's dashboard parses with Prometheus' parser
// and names bgplb's own metrics (the lab test checks them against a live scrape).
func TestDashboardParses(t *testing.T) {
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	qs, err := Queries(b)
	if err != nil {
		t.Fatal(err)
	}
	names, err := MetricNames(b)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d queries, %d metric names", len(qs), len(names))
	for _, want := range []string{"bgplb_bgp_peer_session_up", "bgplb_pool_addresses_used", "bgplb_datapath_service_bytes_total",
		"bgplb_datapath_drops_total", "bgplb_ipam_allocation_failures_total", "bgplb_service_announcements_total", "workqueue_depth", "rest_client_requests_total"} {
		if !slices.Contains(names, want) {
			t.Errorf("the dashboard does not use %s", want)
		}
	}
}

// TestParserRejects: a query Prometheus cannot parse, or one without a metric name, fails.
func TestParserRejects(t *testing.T) {
	for _, expr := range []string{`sum(rate(bgplb_x[5m])`, `sum by (le) (rate({job="x"}[5m]))`, `vector(1)`} {
		d := `{"panels":[{"title":"p","targets":[{"refId":"A","expr":` + quote(expr) + `}]}]}`
		if _, err := MetricNames([]byte(d)); err == nil {
			t.Errorf("%q accepted", expr)
		}
	}
}

func quote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }
