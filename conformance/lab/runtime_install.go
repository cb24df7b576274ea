package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/bgplb/bgplb/manifests"
)

// labImages are the OCI archives (<ImageDir>/<name>.tar, written by `make image
// image-pause`) imported into every real node's containerd.
var labImages = []string{"pause", "podserver", "bgplb"}

// DaemonSetName is bgplbd's DaemonSet in manifests/base.
const DaemonSetName = "bgplbd"

// imageRef returns the reference (repo:tag) the OCI layout <dir>/<name> names its
// image with: the io.containerd.image.name annotation imagebuild writes, under which
// `ctr images import` stores it.
func imageRef(dir, name string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, name, "index.json"))
	if err != nil {
		return "", fmt.Errorf("read image layout %s (run `make image image-pause`): %w", filepath.Join(dir, name), err)
	}
	var idx struct {
		Manifests []struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		return "", fmt.Errorf("decode %s/index.json: %w", filepath.Join(dir, name), err)
	}
	if len(idx.Manifests) != 1 || idx.Manifests[0].Annotations["io.containerd.image.name"] == "" {
		return "", fmt.Errorf("image layout %s names no image (io.containerd.image.name)", filepath.Join(dir, name))
	}
	return idx.Manifests[0].Annotations["io.containerd.image.name"], nil
}

// ImageRef returns the reference of lab image name ("bgplb", "podserver", "pause") as
// imported into the real nodes.
func (l *Lab) ImageRef(name string) (string, error) { return imageRef(l.Opts.ImageDir, name) }

func goarch() string { return runtime.GOARCH }

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// installBgplb applies manifests/base with a kustomize overlay a user of this lab would
// write: the image imported into the nodes (never pulled), and bgplbd's lab flags. It
// waits until the DaemonSet's pods are ready on every node.
func (l *Lab) installBgplb(ctx context.Context, cs kubernetes.Interface) error {
	image, err := l.ImageRef("bgplb")
	if err != nil {
		return err
	}
	dir := filepath.Join(l.Dir, "install")
	if err := writeFS(manifests.Base, "base", filepath.Join(dir, "base")); err != nil {
		return err
	}
	if err := l.writeInstallOverlay(dir, image); err != nil {
		return err
	}
	if out, err := run(ctx, l.k8sBin("kubectl"), "--kubeconfig", l.Kubeconfig(), "apply", "--server-side", "-k", dir); err != nil {
		return fmt.Errorf("apply the bgplb manifests: %w: %s", err, out)
	}
	return l.WaitDaemonSet(ctx, cs, 120*time.Second)
}

// writeInstallOverlay writes <dir>/kustomization.yaml over <dir>/base with image as
// bgplbd's image.
func (l *Lab) writeInstallOverlay(dir, image string) error {
	name, tag, ok := strings.Cut(image, ":")
	if !ok {
		return fmt.Errorf("image %q has no tag", image)
	}
	args := []string{"--uplink-interfaces=eth0", "--v=2"}
	if l.Opts.ExportPodCIDR {
		args = append(args, "--export-pod-cidr")
	}
	if l.Opts.DatapathAttach != "" {
		args = append(args, "--datapath-attach="+l.Opts.DatapathAttach)
	}
	args = append(args, l.Opts.DaemonExtraArgs...)
	ops := []map[string]any{
		{"op": "add", "path": "/spec/template/spec/containers/0/imagePullPolicy", "value": "Never"},
		// The lab's way to keep a node's bgplbd down (DaemonStoppedLabel).
		{"op": "add", "path": "/spec/template/spec/affinity", "value": map[string]any{"nodeAffinity": map[string]any{
			"requiredDuringSchedulingIgnoredDuringExecution": map[string]any{"nodeSelectorTerms": []any{map[string]any{
				"matchExpressions": []any{map[string]any{"key": DaemonStoppedLabel, "operator": "DoesNotExist"}}}}}}}},
	}
	for _, a := range args {
		ops = append(ops, map[string]any{"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": a})
	}
	patch, err := json.Marshal(ops)
	if err != nil {
		return fmt.Errorf("marshal DaemonSet patch: %w", err)
	}
	k := map[string]any{
		"apiVersion": "kustomize.config.k8s.io/v1beta1",
		"kind":       "Kustomization",
		"resources":  []string{"base"},
		"images":     []map[string]string{{"name": "ghcr.io/bgplb/bgplb", "newName": name, "newTag": tag}},
		"patches": []map[string]any{{
			"target": map[string]string{"kind": "DaemonSet", "name": DaemonSetName},
			"patch":  string(patch),
		}},
	}
	data, err := json.MarshalIndent(k, "", "  ")
	if err != nil {
		return fmt.Errorf("marshal kustomization: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), data, 0o644); err != nil {
		return fmt.Errorf("write kustomization: %w", err)
	}
	return nil
}

// WaitDaemonSet waits until bgplbd's DaemonSet has an up-to-date, ready pod on every
// lab node.
func (l *Lab) WaitDaemonSet(ctx context.Context, cs kubernetes.Interface, timeout time.Duration) error {
	var last string
	err := poll(ctx, timeout, 250*time.Millisecond, func(ctx context.Context) (bool, error) {
		ds, err := cs.AppsV1().DaemonSets(DaemonNamespace).Get(ctx, DaemonSetName, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		st := ds.Status
		last = fmt.Sprintf("generation %d/%d, desired %d, updated %d, ready %d", st.ObservedGeneration, ds.Generation,
			st.DesiredNumberScheduled, st.UpdatedNumberScheduled, st.NumberReady)
		return st.ObservedGeneration == ds.Generation && int(st.DesiredNumberScheduled) == len(l.Nodes) &&
			st.UpdatedNumberScheduled == st.DesiredNumberScheduled && st.NumberReady == st.DesiredNumberScheduled &&
			st.NumberUnavailable == 0, nil
	})
	if err != nil {
		return fmt.Errorf("wait for DaemonSet %s/%s (%s): %w", DaemonNamespace, DaemonSetName, last, err)
	}
	return nil
}

// writeFS copies the tree root of fsys to dir.
func writeFS(fsys fs.FS, root, dir string) error {
	return fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p) // p is below root
		target := filepath.Join(dir, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		src, err := fsys.Open(p)
		if err != nil {
			return fmt.Errorf("open %s: %w", p, err)
		}
		defer src.Close()
		dst, err := os.Create(target)
		if err != nil {
			return fmt.Errorf("create %s: %w", target, err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			dst.Close()
			return fmt.Errorf("write %s: %w", target, err)
		}
		return dst.Close()
	})
}

// daemonSetRunning reports whether bgplbd's DaemonSet has a ready pod.
func (l *Lab) daemonSetRunning() bool {
	cs, err := l.Clientset()
	if err != nil {
		return false
	}
	ds, err := cs.AppsV1().DaemonSets(DaemonNamespace).Get(context.Background(), DaemonSetName, metav1.GetOptions{})
	return err == nil && ds.Status.NumberReady > 0
}

// demoFix adapts the demo's objects to real nodes, which pull no images: every
// Deployment runs the imported podserver image on its container ports (the lab kubelet
// runs the pod server whatever the image says).
func (l *Lab) demoFix() (func(*unstructured.Unstructured) error, error) {
	if l.Opts.Runtime != RuntimeContainerd {
		return nil, nil
	}
	image, err := l.ImageRef("podserver")
	if err != nil {
		return nil, err
	}
	return func(obj *unstructured.Unstructured) error {
		if obj.GetKind() != "Deployment" {
			return nil
		}
		containers, _, err := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "containers")
		if err != nil {
			return err
		}
		for i, c := range containers {
			m, ok := c.(map[string]any)
			if !ok {
				continue
			}
			var tcp []string
			ports, _ := m["ports"].([]any)
			for _, p := range ports {
				if pm, ok := p.(map[string]any); ok && (pm["protocol"] == nil || pm["protocol"] == "TCP") {
					tcp = append(tcp, fmt.Sprint(pm["containerPort"]))
				}
			}
			if len(tcp) == 0 {
				tcp = []string{"8080"}
			}
			m["image"] = image
			m["args"] = []any{"--tcp", strings.Join(tcp, ",")}
			delete(m, "command")
			containers[i] = m
		}
		return unstructured.SetNestedSlice(obj.Object, containers, "spec", "template", "spec", "containers")
	}, nil
}

// ImportImage imports the OCI archive tar into every node's containerd (as `make image`
// writes it), for example a new bgplb image to roll the DaemonSet to.
func (l *Lab) ImportImage(ctx context.Context, tar string) error {
	for _, n := range l.Nodes {
		if err := importImage(ctx, n, tar); err != nil {
			return err
		}
	}
	return nil
}

// importImage imports the OCI archive tar into node n's containerd, in the CRI's
// namespace, for the host's platform.
func importImage(ctx context.Context, n Node, tar string) error {
	if out, err := run(ctx, "ctr", "--address", n.ContainerdSocket(), "-n", "k8s.io", "images", "import",
		"--platform", "linux/"+goarch(), tar); err != nil {
		return fmt.Errorf("import %s into %s's containerd: %w: %s", tar, n.Name, err, out)
	}
	return nil
}

// SetDaemonImage rolls bgplbd's DaemonSet to image (imported with ImportImage) and
// waits until every node runs a ready pod of it.
func (l *Lab) SetDaemonImage(ctx context.Context, image string) error {
	cs, err := l.Clientset()
	if err != nil {
		return err
	}
	patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"bgplbd","image":%q}]}}}}`, image)
	if _, err := cs.AppsV1().DaemonSets(DaemonNamespace).Patch(ctx, DaemonSetName, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("set bgplbd's image to %s: %w", image, err)
	}
	return l.WaitDaemonSet(ctx, cs, 5*time.Minute)
}
