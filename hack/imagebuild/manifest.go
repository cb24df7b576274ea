package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// kustomization is the part of a Kustomization WriteManifest understands: the base
// only lists resources (files and directories with their own kustomization.yaml) and
// may rename the image. Anything else would change the objects, so it is refused.
type kustomization struct {
	Resources []string `json:"resources"`
	Images    []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
	} `json:"images"`
}

// allowedKustomizationKeys are the fields WriteManifest handles.
var allowedKustomizationKeys = []string{"apiVersion", "kind", "resources", "images", "metadata"}

// WriteManifest writes the resources of the kustomization in base, in kustomization
// order (directories recursively), as one multi-document YAML to out, with every
// container image of bgplb replaced by image (repo@sha256:digest). kustomize is not a
// dependency of this module; the base uses no transformer but `images`, so this
// concatenation is what `kubectl kustomize` renders up to object order
// (TestWriteManifestMatchesKustomize compares them).
func WriteManifest(base, image, out string) error {
	docs, names, err := kustomizeDocs(base)
	if err != nil {
		return err
	}
	names = append(names, defaultRepo)
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# bgplb %s: rendered from manifests/base by `make release`.\n", image)
	for _, d := range docs {
		buf.WriteString("---\n")
		buf.Write(pinImages(d, names, image))
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(out), err)
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	return nil
}

// kustomizeDocs returns the YAML documents of dir's kustomization and the image
// names its `images` entries mention.
func kustomizeDocs(dir string) ([][]byte, []string, error) {
	path := filepath.Join(dir, "kustomization.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read kustomization: %w", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, nil, fmt.Errorf("parse %s: %w", path, err)
	}
	for k := range raw {
		if !slices.Contains(allowedKustomizationKeys, k) {
			return nil, nil, fmt.Errorf("%s: field %q is not supported by the release renderer (only resources and images); render with kustomize instead", path, k)
		}
	}
	var k kustomization
	if err := yaml.Unmarshal(data, &k); err != nil {
		return nil, nil, fmt.Errorf("parse %s: %w", path, err)
	}
	var docs [][]byte
	var names []string
	for _, im := range k.Images {
		names = append(names, im.Name, im.NewName)
	}
	for _, r := range k.Resources {
		p := filepath.Join(dir, r)
		st, err := os.Stat(p)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: resource %q: %w", path, r, err)
		}
		if st.IsDir() {
			sub, subNames, err := kustomizeDocs(p)
			if err != nil {
				return nil, nil, err
			}
			docs, names = append(docs, sub...), append(names, subNames...)
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, fmt.Errorf("read resource: %w", err)
		}
		docs = append(docs, splitDocs(b)...)
	}
	return docs, names, nil
}

// splitDocs splits a multi-document YAML file and drops empty documents.
func splitDocs(b []byte) [][]byte {
	var out [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---[ \t]*$\n?`).Split(string(b), -1) {
		if strings.TrimSpace(stripComments(d)) == "" {
			continue
		}
		if !strings.HasSuffix(d, "\n") {
			d += "\n"
		}
		out = append(out, []byte(d))
	}
	return out
}

func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// pinImages replaces `image: <name>[:tag|@digest]` for each of names with image.
func pinImages(doc []byte, names []string, image string) []byte {
	for _, n := range names {
		if n == "" {
			continue
		}
		re := regexp.MustCompile(`(?m)^(\s*(?:-\s+)?image:\s*["']?)` + regexp.QuoteMeta(n) + `(?:[:@][^"'\s]*)?(["']?\s*)$`)
		doc = re.ReplaceAll(doc, []byte("${1}"+image+"${2}"))
	}
	return doc
}
