//go:build apiserver

package charts

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/bgplb/bgplb/internal/apiservertest"
)

const (
	chartDir  = "bgplb"
	namespace = "bgplb-system"
)

// valueSets are the values files the chart is linted and dry-run applied with: the
// defaults, the k3s and RKE2 files, the datapath off, and every optional part on.
var valueSets = []struct {
	name string
	args []string
}{
	{"default", nil},
	{"k3s", []string{"-f", "bgplb/values-k3s.yaml"}},
	{"rke2", []string{"-f", "bgplb/values-rke2.yaml"}},
	{"datapath-off", []string{"--set", "datapath.enabled=false"}},
	{"all", []string{"-f", "testdata/values-all.yaml"}},
}

// TestChart lints and renders the chart with each value set, dry-run applies what it
// renders (and the kustomize base and overlays) to a real kube-apiserver, and checks
// the rendered DaemonSet against kustomize's.
func TestChart(t *testing.T) {
	helm, kubectl := apiservertest.Tool(t, "helm"), apiservertest.Tool(t, "kubectl")

	t.Run("lint", func(t *testing.T) {
		for _, vs := range valueSets {
			out, err := run(t, nil, helm, append([]string{"lint", "--strict", chartDir}, vs.args...)...)
			if err != nil {
				t.Errorf("helm lint (%s): %v\n%s", vs.name, err, out)
			} else if !strings.Contains(out, "1 chart(s) linted, 0 chart(s) failed") {
				t.Errorf("helm lint (%s) did not report a clean lint:\n%s", vs.name, out)
			}
		}
		// values.schema.json refuses a misspelt key and a wrong type instead of ignoring them.
		for _, bad := range []string{"cni.confdir=/x", "datapath.enabled=maybe", "image.digest=latest"} {
			out, err := run(t, nil, helm, "template", "bgplb", chartDir, "--set", bad)
			if err == nil || !strings.Contains(out, "schema") {
				t.Errorf("helm template --set %s was not refused by the values schema (err %v):\n%.500s", bad, err, out)
			}
		}
	})

	rendered := map[string]string{}
	for _, vs := range valueSets {
		rendered[vs.name] = helmTemplate(t, helm, vs.args...)
	}

	t.Run("DaemonSetEqualsKustomize", func(t *testing.T) {
		for _, c := range []struct{ values, kustomization string }{
			{"default", "../base"},
			{"k3s", "../overlays/k3s"},
			{"rke2", "../overlays/rke2"},
		} {
			out, err := run(t, nil, kubectl, "kustomize", c.kustomization)
			if err != nil {
				t.Fatalf("kubectl kustomize %s: %v\n%s", c.kustomization, err, out)
			}
			want := daemonSet(t, out)
			got := daemonSet(t, rendered[c.values])
			stripChartOnly(t, got)
			normalize(want)
			normalize(got)
			if !reflect.DeepEqual(got.Object, want.Object) {
				gy, _ := yaml.Marshal(got.Object)
				wy, _ := yaml.Marshal(want.Object)
				t.Errorf("DaemonSet of the chart (%s values) differs from kubectl kustomize %s beyond the documented differences\nchart:\n%s\nkustomize:\n%s",
					c.values, c.kustomization, gy, wy)
			}
		}
	})

	// The allocator Deployment is manifests/base's with the default values, apart from
	// the chart's labels and config checksum.
	t.Run("AllocatorEqualsKustomize", func(t *testing.T) {
		out, err := run(t, nil, kubectl, "kustomize", "../base")
		if err != nil {
			t.Fatalf("kubectl kustomize ../base: %v\n%s", err, out)
		}
		want := find(t, out, "Deployment", "bgplb-allocator")
		got := find(t, rendered["default"], "Deployment", "bgplb-allocator")
		if want == nil || got == nil {
			t.Fatalf("Deployment bgplb-allocator: kustomize %v, chart %v", want != nil, got != nil)
		}
		stripChartOnly(t, got)
		if !reflect.DeepEqual(got.Object, want.Object) {
			gy, _ := yaml.Marshal(got.Object)
			wy, _ := yaml.Marshal(want.Object)
			t.Errorf("Deployment bgplb-allocator of the chart differs from manifests/base\nchart:\n%s\nkustomize:\n%s", gy, wy)
		}
	})

	// The admission policies (docs/design.md, "Trust boundaries") are those of
	// manifests/base with the default values, apart from the chart's labels.
	t.Run("AdmissionEqualsKustomize", func(t *testing.T) {
		out, err := run(t, nil, kubectl, "kustomize", "../base")
		if err != nil {
			t.Fatalf("kubectl kustomize ../base: %v\n%s", err, out)
		}
		n := 0
		for _, want := range objects(t, out) {
			if !strings.HasPrefix(want.GetKind(), "ValidatingAdmissionPolicy") {
				continue
			}
			n++
			got := find(t, rendered["default"], want.GetKind(), want.GetName())
			if got == nil {
				t.Errorf("the chart renders no %s %s", want.GetKind(), want.GetName())
				continue
			}
			got.SetLabels(nil)
			want.SetLabels(nil)
			if !reflect.DeepEqual(got.Object, want.Object) {
				gy, _ := yaml.Marshal(got.Object)
				wy, _ := yaml.Marshal(want.Object)
				t.Errorf("%s %s of the chart differs from manifests/base\nchart:\n%s\nkustomize:\n%s", want.GetKind(), want.GetName(), gy, wy)
			}
		}
		if n != 4 {
			t.Errorf("manifests/base has %d admission policies and bindings, want 4", n)
		}
	})

	t.Run("Values", func(t *testing.T) {
		checkDatapathOff(t, daemonSet(t, rendered["datapath-off"]))
		checkAll(t, rendered["all"])
		if img := container(t, daemonSet(t, rendered["default"]))["image"]; img != "ghcr.io/bgplb/bgplb:v0.1.0" {
			t.Errorf("default image = %v, want ghcr.io/bgplb/bgplb:v0.1.0 (the chart's appVersion)", img)
		}
		// Chart.yaml's kubeVersion is the CRDs' minimum (README, compatibility table;
		// manifests/crds_test.go checks the CEL rules need exactly that).
		if out, err := run(t, nil, helm, "template", "bgplb", chartDir, "--kube-version", "v1.30.0"); err == nil || !strings.Contains(out, "requires kubeVersion") {
			t.Errorf("helm template for Kubernetes 1.30 did not refuse (err %v):\n%.500s", err, out)
		}
		if out, err := run(t, nil, helm, "template", "bgplb", chartDir, "--kube-version", "v1.31.0"); err != nil {
			t.Errorf("helm template for Kubernetes 1.31: %v\n%s", err, out)
		}
	})

	t.Run("Package", func(t *testing.T) {
		// make release ships the packaged chart: packaging is reproducible and the
		// archive renders what the directory renders.
		var sums []string
		var pkg string
		for i := range 2 {
			dir := t.TempDir()
			if out, err := run(t, nil, helm, "package", chartDir, "-d", dir); err != nil {
				t.Fatalf("helm package: %v\n%s", err, out)
			}
			pkg = filepath.Join(dir, "bgplb-0.1.0.tgz")
			b, err := os.ReadFile(pkg)
			if err != nil {
				t.Fatal(err)
			}
			sums = append(sums, fmt.Sprintf("%x", sha256.Sum256(b)))
			if i == 0 {
				time.Sleep(1100 * time.Millisecond) // a timestamp in the archive would show
			}
		}
		if sums[0] != sums[1] {
			t.Errorf("helm package is not reproducible: %s then %s", sums[0], sums[1])
		}
		out, err := run(t, nil, helm, "template", "bgplb", pkg, "--namespace", namespace, "--include-crds")
		if err != nil {
			t.Fatalf("helm template of the package: %v\n%s", err, out)
		}
		if want := helmTemplate(t, helm, "--include-crds"); out != want {
			t.Errorf("the packaged chart renders differently from %s", chartDir)
		}
	})

	srv := apiservertest.Start(t)
	k := func(stdin io.Reader, args ...string) (string, error) {
		return run(t, stdin, kubectl, append([]string{"--kubeconfig", srv.Kubeconfig}, args...)...)
	}
	// CRDs and the namespace exist for real first: a server-side dry run neither creates
	// a CRD nor a namespace that later objects of the same apply could use.
	for _, args := range [][]string{
		{"apply", "--server-side", "-f", filepath.Join(chartDir, "crds")},
		{"apply", "--server-side", "-f", "testdata/servicemonitor-crd.yaml"},
		{"wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"},
		{"create", "namespace", namespace},
	} {
		if out, err := k(nil, args...); err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	t.Run("DryRunServer", func(t *testing.T) {
		for _, vs := range valueSets {
			out, err := k(strings.NewReader(rendered[vs.name]), "apply", "--dry-run=server", "-f", "-")
			if err != nil {
				t.Errorf("helm template (%s) | kubectl apply --dry-run=server: %v\n%s", vs.name, err, out)
				continue
			}
			if !strings.Contains(out, "daemonset.apps/bgplbd created (server dry run)") {
				t.Errorf("dry run (%s) did not create the DaemonSet:\n%s", vs.name, out)
			}
			t.Logf("%s values:\n%s", vs.name, out)
		}
		// The CRDs as `helm install` applies them (from crds/), against the installed ones.
		withCRDs := helmTemplate(t, helm, "--include-crds")
		if out, err := k(strings.NewReader(withCRDs), "apply", "--dry-run=server", "-f", "-"); err != nil {
			t.Errorf("helm template --include-crds | kubectl apply --dry-run=server: %v\n%s", err, out)
		}
		for _, dir := range []string{"../base", "../overlays/k3s", "../overlays/rke2"} {
			if out, err := k(nil, "apply", "--dry-run=server", "-k", dir); err != nil {
				t.Errorf("kubectl apply --dry-run=server -k %s: %v\n%s", dir, err, out)
			}
		}
	})
}

func run(t *testing.T, stdin io.Reader, bin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdin = stdin
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func helmTemplate(t *testing.T, helm string, args ...string) string {
	t.Helper()
	out, err := run(t, nil, helm, append([]string{"template", "bgplb", chartDir, "--namespace", namespace}, args...)...)
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", args, err, out)
	}
	return out
}

// objects parses a multi-document YAML stream.
func objects(t *testing.T, stream string) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(stream), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs
			}
			t.Fatalf("decode YAML: %v", err)
		}
		if len(m) > 0 {
			objs = append(objs, &unstructured.Unstructured{Object: m})
		}
	}
}

func find(t *testing.T, stream, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objects(t, stream) {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

func daemonSet(t *testing.T, stream string) *unstructured.Unstructured {
	t.Helper()
	ds := find(t, stream, "DaemonSet", "bgplbd")
	if ds == nil {
		t.Fatalf("no DaemonSet bgplbd in:\n%s", stream)
	}
	return ds
}

func container(t *testing.T, ds *unstructured.Unstructured) map[string]any {
	t.Helper()
	cs, _, _ := unstructured.NestedSlice(ds.Object, "spec", "template", "spec", "containers")
	if len(cs) != 1 {
		t.Fatalf("DaemonSet has %d containers, want 1", len(cs))
	}
	return cs[0].(map[string]any)
}

// chartOnlyLabels are the DaemonSet labels Helm charts carry and manifests/base does
// not; the pod template and the selector carry none of them.
var chartOnlyLabels = []string{"helm.sh/chart", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by", "app.kubernetes.io/version"}

// stripChartOnly removes, after checking they are there, the documented differences
// of the chart's DaemonSet (README.md, "Helm chart and kustomize"): the Helm labels on
// the DaemonSet and the checksum/config annotation on the pod template.
func stripChartOnly(t *testing.T, ds *unstructured.Unstructured) {
	t.Helper()
	labels := ds.GetLabels()
	for _, l := range chartOnlyLabels {
		if labels[l] == "" {
			t.Errorf("chart DaemonSet lacks label %s", l)
		}
		delete(labels, l)
	}
	ds.SetLabels(labels)
	ann, _, _ := unstructured.NestedStringMap(ds.Object, "spec", "template", "metadata", "annotations")
	if len(ann["checksum/config"]) != 64 {
		t.Errorf("chart DaemonSet's pod template lacks a sha256 checksum/config annotation: %v", ann)
	}
	delete(ann, "checksum/config")
	if len(ann) == 0 {
		unstructured.RemoveNestedField(ds.Object, "spec", "template", "metadata", "annotations")
	} else if err := unstructured.SetNestedStringMap(ds.Object, ann, "spec", "template", "metadata", "annotations"); err != nil {
		t.Fatal(err)
	}
}

// normalize sorts the pod's volumes by name (a kustomize patch moves the volumes it
// patches to the front; the order of volumes has no meaning).
func normalize(ds *unstructured.Unstructured) {
	vols, _, _ := unstructured.NestedSlice(ds.Object, "spec", "template", "spec", "volumes")
	slices.SortFunc(vols, func(a, b any) int {
		return strings.Compare(a.(map[string]any)["name"].(string), b.(map[string]any)["name"].(string))
	})
	_ = unstructured.SetNestedSlice(ds.Object, vols, "spec", "template", "spec", "volumes")
}

func stringsOf(v any) []string {
	var s []string
	for _, x := range v.([]any) {
		s = append(s, x.(string))
	}
	return s
}

// checkDatapathOff: --datapath=false, no chaining flags, no CNI dirs mounted.
func checkDatapathOff(t *testing.T, ds *unstructured.Unstructured) {
	t.Helper()
	c := container(t, ds)
	args := stringsOf(c["args"])
	if !slices.Contains(args, "--datapath=false") {
		t.Errorf("datapath.enabled=false: args %v lack --datapath=false", args)
	}
	for _, a := range args {
		if strings.HasPrefix(a, "--cni-") {
			t.Errorf("datapath.enabled=false: args still carry %s", a)
		}
	}
	vols, _, _ := unstructured.NestedSlice(ds.Object, "spec", "template", "spec", "volumes")
	for _, v := range vols {
		if n := v.(map[string]any)["name"].(string); strings.HasPrefix(n, "cni-") {
			t.Errorf("datapath.enabled=false: volume %s still mounted", n)
		}
	}
}

// checkAll: the optional parts render what their values say.
func checkAll(t *testing.T, stream string) {
	t.Helper()
	ds := daemonSet(t, stream)
	c := container(t, ds)
	if want := "ghcr.io/bgplb/bgplb@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"; c["image"] != want {
		t.Errorf("image.digest: image = %v, want %s", c["image"], want)
	}
	if c["imagePullPolicy"] != "IfNotPresent" {
		t.Errorf("imagePullPolicy = %v", c["imagePullPolicy"])
	}
	if args := stringsOf(c["args"]); !slices.Contains(args, "--export-pod-cidr") {
		t.Errorf("extraArgs: args %v lack --export-pod-cidr", args)
	}
	if sel, _, _ := unstructured.NestedStringMap(ds.Object, "spec", "template", "spec", "nodeSelector"); sel["kubernetes.io/os"] != "linux" {
		t.Errorf("nodeSelector = %v", sel)
	}
	sm := find(t, stream, "ServiceMonitor", "bgplbd")
	if sm == nil || sm.GetLabels()["release"] != "kube-prometheus-stack" {
		t.Errorf("metrics.serviceMonitor: ServiceMonitor missing or without its labels: %v", sm)
	}
	svc := find(t, stream, "Service", "bgplbd-metrics")
	if svc == nil {
		t.Fatal("metrics.serviceMonitor: no Service bgplbd-metrics")
	}
	smSel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	for k, v := range smSel {
		if svc.GetLabels()[k] != v {
			t.Errorf("ServiceMonitor selector %s=%s does not match the metrics Service's labels %v", k, v, svc.GetLabels())
		}
	}
	peer := find(t, stream, "BGPPeer", "router")
	if gr, _, _ := unstructured.NestedBool(peer.Object, "spec", "gracefulRestart", "enabled"); !gr {
		t.Errorf("examples.peer: BGPPeer without bgp.gracefulRestart: %v", peer)
	}
	if find(t, stream, "LoadBalancerIPPool", "default") == nil || find(t, stream, "BGPAdvertisement", "default") == nil {
		t.Error("examples.pool/advertisement: pool or advertisement missing")
	}
}
