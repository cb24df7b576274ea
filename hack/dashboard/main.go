// Command dashboard lists the metric names the PromQL queries of a Grafana dashboard
// use, parsing every query with Prometheus' own parser (promql/parser), and fails on a
// query that does not parse:
//
//	go -C hack/dashboard run . ../../manifests/monitoring/grafana-dashboard.json
//
// It is its own Go module so the Prometheus server module and its dependencies stay out
// of bgplb's go.mod; the lab test TestLabMetricsForDashboard (conformance/lab) runs it
// and checks every name against what the lab's bgplbd daemons export.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: dashboard DASHBOARD.json")
		os.Exit(2)
	}
	b, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	names, err := MetricNames(b)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, n := range names {
		fmt.Println(n)
	}
}

// Query is one PromQL query of the dashboard and where it is.
type Query struct {
	Where string
	Expr  string
}

// Queries returns every PromQL query of a dashboard: the panels' (and rows' nested
// panels') targets and the query variables' label_values(EXPR, label) expressions.
func Queries(dashboard []byte) ([]Query, error) {
	var d struct {
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(dashboard, &d); err != nil {
		return nil, fmt.Errorf("parse dashboard: %w", err)
	}
	var out []Query
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				if t.Expr != "" {
					out = append(out, Query{Where: fmt.Sprintf("panel %q target %s", p.Title, t.RefID), Expr: t.Expr})
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q string
		var obj struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			if err := json.Unmarshal(v.Query, &obj); err != nil {
				return nil, fmt.Errorf("variable %s: query is neither a string nor an object", v.Name)
			}
			q = obj.Query
		}
		expr, err := variableExpr(q)
		if err != nil {
			return nil, fmt.Errorf("variable %s: %w", v.Name, err)
		}
		out = append(out, Query{Where: "variable " + v.Name, Expr: expr})
	}
	return out, nil
}

type panel struct {
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
}

// labelValues matches Grafana's label_values(EXPR, label) and label_values(label).
var labelValues = regexp.MustCompile(`^\s*label_values\((.*?)(?:,\s*(\w+))?\)\s*$`)

func variableExpr(q string) (string, error) {
	if m := labelValues.FindStringSubmatch(q); m != nil {
		if m[2] == "" {
			return "", fmt.Errorf("label_values(%s) names no metric", m[1])
		}
		return m[1], nil
	}
	if strings.HasPrefix(strings.TrimSpace(q), "query_result(") {
		return strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(q), "query_result("), ")"), nil
	}
	return "", fmt.Errorf("unsupported variable query %q", q)
}

// grafanaVars are Grafana's macros and this dashboard's variables with a value that
// keeps the query valid PromQL.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "5m", "${__rate_interval}", "5m",
	"$__interval", "1m", "${__interval}", "1m",
	"$__range", "1h", "${__range}", "1h",
	"$instance", ".*", "${instance}", ".*",
)

// MetricNames parses every query of the dashboard and returns the metric names they
// select, sorted; a query that does not parse, or selects no metric by name, is an
// error.
func MetricNames(dashboard []byte) ([]string, error) {
	qs, err := Queries(dashboard)
	if err != nil {
		return nil, err
	}
	if len(qs) == 0 {
		return nil, fmt.Errorf("the dashboard has no query")
	}
	p := parser.NewParser(parser.Options{})
	seen := map[string]bool{}
	var errs []string
	for _, q := range qs {
		expr, err := p.ParseExpr(grafanaVars.Replace(q.Expr))
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %q: %v", q.Where, q.Expr, err))
			continue
		}
		n := 0
		parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
			vs, ok := node.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
					name = m.Value
				}
			}
			if name == "" {
				errs = append(errs, fmt.Sprintf("%s: %q: a selector without a metric name", q.Where, q.Expr))
				return nil
			}
			seen[name] = true
			n++
			return nil
		})
		if n == 0 {
			errs = append(errs, fmt.Sprintf("%s: %q selects no metric", q.Where, q.Expr))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("dashboard queries:\n  %s", strings.Join(errs, "\n  "))
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}
