package manifests

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/bgplb/bgplb/internal/apiservertest"
)

// TestMonitoringComponent builds manifests/base with the manifests/monitoring component
// (kubectl's kustomize) and checks the wiring: bgplbd's metrics listen on all addresses
// (the last --metrics-bind-address wins), every ServiceMonitor selects a metrics
// Service, every metrics Service selects a workload's pods through a port named
// metrics, and the dashboard ConfigMap carries the dashboard file.
func TestMonitoringComponent(t *testing.T) {
	kubectl := apiservertest.Tool(t, "kubectl")
	dir := t.TempDir()
	overlay := filepath.Join(dir, "overlay")
	if err := os.Mkdir(overlay, 0o755); err != nil {
		t.Fatal(err)
	}
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		rel, err := filepath.Rel(overlay, a)
		if err != nil {
			t.Fatal(err)
		}
		return rel
	}
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [" + abs("base") + "]\ncomponents: [" + abs("monitoring") + "]\n"
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(kubectl, "kustomize", "--load-restrictor=LoadRestrictionsNone", overlay).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v", err)
	}
	var objs []*unstructured.Unstructured
	for _, doc := range bytes.Split(out, []byte("\n---\n")) {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			t.Fatalf("parse kustomize output: %v", err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	byKind := map[string][]*unstructured.Unstructured{}
	for _, o := range objs {
		byKind[o.GetKind()] = append(byKind[o.GetKind()], o)
	}

	// bgplbd's last --metrics-bind-address listens on all addresses.
	for _, ds := range byKind["DaemonSet"] {
		cs, _, _ := unstructured.NestedSlice(ds.Object, "spec", "template", "spec", "containers")
		args, _, _ := unstructured.NestedStringSlice(cs[0].(map[string]any), "args")
		last := ""
		for _, a := range args {
			if strings.HasPrefix(a, "--metrics-bind-address=") {
				last = a
			}
		}
		if last != "--metrics-bind-address=0.0.0.0:9464" {
			t.Errorf("DaemonSet %s: last metrics bind address %q, want 0.0.0.0:9464 (args %v)", ds.GetName(), last, args)
		}
	}

	matches := func(sel, labels map[string]string) bool {
		for k, v := range sel {
			if labels[k] != v {
				return false
			}
		}
		return len(sel) > 0
	}
	podLabels := map[string]map[string]string{} // workload -> pod template labels
	hasMetricsPort := map[string]bool{}
	for _, kind := range []string{"DaemonSet", "Deployment"} {
		for _, w := range byKind[kind] {
			l, _, _ := unstructured.NestedStringMap(w.Object, "spec", "template", "metadata", "labels")
			podLabels[w.GetName()] = l
			cs, _, _ := unstructured.NestedSlice(w.Object, "spec", "template", "spec", "containers")
			ports, _, _ := unstructured.NestedSlice(cs[0].(map[string]any), "ports")
			for _, p := range ports {
				if p.(map[string]any)["name"] == "metrics" {
					hasMetricsPort[w.GetName()] = true
				}
			}
		}
	}
	var metricsSvcs []*unstructured.Unstructured
	for _, s := range byKind["Service"] {
		sel, _, _ := unstructured.NestedStringMap(s.Object, "spec", "selector")
		found := false
		for w, l := range podLabels {
			if matches(sel, l) && hasMetricsPort[w] {
				found = true
			}
		}
		if !found {
			t.Errorf("Service %s selects no workload with a metrics port", s.GetName())
		}
		metricsSvcs = append(metricsSvcs, s)
	}
	if len(byKind["ServiceMonitor"]) != 2 {
		t.Fatalf("%d ServiceMonitors, want 2 (bgplbd, allocator)", len(byKind["ServiceMonitor"]))
	}
	for _, sm := range byKind["ServiceMonitor"] {
		sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
		n := 0
		for _, s := range metricsSvcs {
			if matches(sel, s.GetLabels()) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("ServiceMonitor %s selects %d metrics Services, want 1", sm.GetName(), n)
		}
	}

	want, err := os.ReadFile("monitoring/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, cm := range byKind["ConfigMap"] {
		if cm.GetName() != "bgplb-grafana-dashboard" {
			continue
		}
		found = true
		got, _, _ := unstructured.NestedString(cm.Object, "data", "grafana-dashboard.json")
		if got != string(want) || cm.GetLabels()["grafana_dashboard"] != "1" {
			t.Errorf("dashboard ConfigMap: labels %v, data equal to the file: %v", cm.GetLabels(), got == string(want))
		}
	}
	if !found {
		t.Error("no bgplb-grafana-dashboard ConfigMap")
	}
}
