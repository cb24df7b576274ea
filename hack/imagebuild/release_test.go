package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

func TestPackageChart(t *testing.T) {
	epoch := time.Unix(1764720000, 0)
	out1, out2 := t.TempDir(), t.TempDir()
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	pin := map[string]string{"repository": "registry.example/bgplb", "digest": digest}
	p1, err := PackageChart("testdata/chart/fixture", "v1.2.3", out1, epoch, pin)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := PackageChart("testdata/chart/fixture", "v1.2.3", out2, epoch, pin)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(p1) != "fixture-1.2.3.tgz" {
		t.Errorf("package name %s, want fixture-1.2.3.tgz", filepath.Base(p1))
	}
	b1, _ := os.ReadFile(p1)
	b2, _ := os.ReadFile(p2)
	if !bytes.Equal(b1, b2) {
		t.Errorf("two packages of the same chart differ")
	}

	zr, err := gzip.NewReader(bytes.NewReader(b1))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	files := map[string][]byte{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !hdr.ModTime.Equal(epoch) || hdr.Uid != 0 || hdr.Gid != 0 {
			t.Errorf("%s: mtime %v uid %d gid %d, want %v 0 0", hdr.Name, hdr.ModTime, hdr.Uid, hdr.Gid, epoch)
		}
		data, _ := io.ReadAll(tr)
		files[hdr.Name] = data
	}
	for _, want := range []string{"fixture/Chart.yaml", "fixture/values.yaml", "fixture/templates/configmap.yaml"} {
		if _, ok := files[want]; !ok {
			t.Errorf("package lacks %s (has %v)", want, keys(files))
		}
	}
	for _, unwanted := range []string{"fixture/templates/notes.bak", "fixture/.helmignore"} {
		if _, ok := files[unwanted]; ok {
			t.Errorf("package holds %s, which .helmignore excludes", unwanted)
		}
	}
	var meta struct{ Name, Version, AppVersion string }
	if err := yaml.Unmarshal(files["fixture/Chart.yaml"], &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Name != "fixture" || meta.Version != "1.2.3" || meta.AppVersion != "v1.2.3" {
		t.Errorf("Chart.yaml: %+v, want fixture 1.2.3 v1.2.3", meta)
	}

	var values struct {
		Image struct{ Repository, Digest, Tag string }
	}
	if err := yaml.Unmarshal(files["fixture/values.yaml"], &values); err != nil {
		t.Fatal(err)
	}
	if values.Image.Repository != "registry.example/bgplb" || values.Image.Digest != digest || values.Image.Tag != "" {
		t.Errorf("packaged values.yaml image: %+v, want the pinned repository and digest", values.Image)
	}
	if !bytes.Contains(files["fixture/values.yaml"], []byte("# digest pins the image.")) {
		t.Errorf("packaged values.yaml lost its comments:\n%s", files["fixture/values.yaml"])
	}
	if _, err := PackageChart("testdata/chart/fixture", "v1.2.3", t.TempDir(), epoch, map[string]string{"nosuchkey": "x"}); err == nil {
		t.Errorf("setting an image key values.yaml lacks: no error")
	}

	if _, err := PackageChart(filepath.Join(t.TempDir(), "absent"), "v1.2.3", out1, epoch, nil); !errors.Is(err, ErrNoChart) {
		t.Errorf("absent chart: %v, want ErrNoChart", err)
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestWriteManifest(t *testing.T) {
	const image = "registry.example/bgplb/bgplb@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	out := filepath.Join(t.TempDir(), "bgplb.yaml")
	if err := WriteManifest("../../manifests/base", image, out); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	var images []string
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var obj struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("document does not parse: %v\n%s", err, doc)
		}
		kinds[obj.Kind]++
	}
	for _, m := range regexp.MustCompile(`(?m)^\s*(?:-\s+)?image:\s*(\S+)`).FindAllStringSubmatch(string(data), -1) {
		images = append(images, m[1])
	}
	for _, k := range []string{"CustomResourceDefinition", "Namespace", "ServiceAccount", "ClusterRole", "ConfigMap", "DaemonSet"} {
		if kinds[k] == 0 {
			t.Errorf("manifest has no %s (kinds %v)", k, kinds)
		}
	}
	if kinds["CustomResourceDefinition"] < 4 {
		t.Errorf("manifest has %d CRDs, want at least 4", kinds["CustomResourceDefinition"])
	}
	if len(images) == 0 {
		t.Fatal("manifest has no image")
	}
	for _, im := range images {
		if im != image {
			t.Errorf("image %s is not pinned to %s", im, image)
		}
	}

	err = WriteManifest("testdata/kustomize-patches", image, filepath.Join(t.TempDir(), "x.yaml"))
	if err == nil || !strings.Contains(err.Error(), `"patches"`) {
		t.Errorf("kustomization with patches: %v, want an error naming the field", err)
	}
}

// TestWriteManifestMatchesKustomize checks that the release renderer produces the
// same objects as `kubectl kustomize manifests/base` (kubectl from `make tools`),
// apart from the pinned image.
func TestWriteManifestMatchesKustomize(t *testing.T) {
	dir := os.Getenv("BGPLB_K8S_BIN_DIR")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "bgplb", "bin")
	}
	kubectl := filepath.Join(dir, "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		t.Skipf("kubectl not built (make tools): %v", err)
	}
	want, err := exec.Command(kubectl, "kustomize", "../../manifests/base").Output()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v", err)
	}
	const image = "registry.example/bgplb/bgplb@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	out := filepath.Join(t.TempDir(), "bgplb.yaml")
	if err := WriteManifest("../../manifests/base", image, out); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	wantObjs := objects(t, pinImages(want, []string{defaultRepo}, image))
	gotObjs := objects(t, got)
	if len(wantObjs) != len(gotObjs) {
		t.Errorf("%d objects, kustomize renders %d", len(gotObjs), len(wantObjs))
	}
	for k, w := range wantObjs {
		if g, ok := gotObjs[k]; !ok {
			t.Errorf("%s missing", k)
		} else if !reflect.DeepEqual(g, w) {
			t.Errorf("%s differs from kustomize's", k)
		}
	}
}

// objects parses a multi-document YAML into kind/namespace/name → object.
func objects(t *testing.T, data []byte) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, doc := range splitDocs(data) {
		var obj map[string]any
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			t.Fatal(err)
		}
		if obj == nil {
			continue
		}
		meta, _ := obj["metadata"].(map[string]any)
		out[fmt.Sprintf("%v/%v/%v", obj["kind"], meta["namespace"], meta["name"])] = obj
	}
	return out
}
