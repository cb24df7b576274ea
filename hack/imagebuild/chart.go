package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// ErrNoChart is returned when the chart directory does not exist.
var ErrNoChart = errors.New("no Helm chart")

// PackageChart writes dir as a Helm chart package (<name>-<version>.tgz in out, the
// layout `helm package` writes: every file under <name>/) and returns its path.
// Chart.yaml's version becomes version without its "v" and appVersion version
// itself. Entries are sorted, owned by root, with mtime epoch (the zero time means
// the Unix epoch), and .helmignore patterns are honoured, so a commit gives the
// same bytes.
//
// values, when not empty, sets keys of the top-level `image:` block of values.yaml
// (for example repository and digest, so the package pins the released image); the
// rest of values.yaml, comments included, stays as written.
func PackageChart(dir, version, out string, epoch time.Time, values map[string]string) (string, error) {
	chartYAML, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%w: %s/Chart.yaml does not exist", ErrNoChart, dir)
	}
	if err != nil {
		return "", fmt.Errorf("read chart: %w", err)
	}
	var meta map[string]any
	if err := yaml.Unmarshal(chartYAML, &meta); err != nil {
		return "", fmt.Errorf("parse %s/Chart.yaml: %w", dir, err)
	}
	name, _ := meta["name"].(string)
	if name == "" || strings.ContainsAny(name, "/\\") {
		return "", fmt.Errorf("%s/Chart.yaml: invalid chart name %q", dir, name)
	}
	meta["version"] = strings.TrimPrefix(version, "v")
	meta["appVersion"] = version
	chartYAML, err = yaml.Marshal(meta)
	if err != nil {
		return "", fmt.Errorf("render Chart.yaml: %w", err)
	}
	ignore, err := helmIgnore(dir)
	if err != nil {
		return "", err
	}
	if epoch.IsZero() {
		epoch = time.Unix(0, 0)
	}

	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return "", fmt.Errorf("gzip: %w", err)
	}
	tw := tar.NewWriter(zw)
	add := func(rel string, data []byte) error {
		hdr := &tar.Header{Name: name + "/" + rel, Mode: 0o644, Size: int64(len(data)), ModTime: epoch, Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := add("Chart.yaml", chartYAML); err != nil {
		return "", fmt.Errorf("package Chart.yaml: %w", err)
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if ignore(rel, d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || rel == "Chart.yaml" {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: only regular files can be packaged", rel)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if rel == "values.yaml" && len(values) > 0 {
			if data, err = setImageValues(data, values); err != nil {
				return err
			}
		}
		return add(rel, data)
	})
	if err != nil {
		return "", fmt.Errorf("package chart %s: %w", dir, err)
	}
	if err := tw.Close(); err != nil {
		return "", fmt.Errorf("close chart tar: %w", err)
	}
	if err := zw.Close(); err != nil {
		return "", fmt.Errorf("close chart gzip: %w", err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", out, err)
	}
	dst := filepath.Join(out, fmt.Sprintf("%s-%s.tgz", name, meta["version"]))
	if err := os.WriteFile(dst, buf.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("write chart package: %w", err)
	}
	return dst, nil
}

// helmIgnore returns a matcher for dir/.helmignore: one glob per line ("#" starts a
// comment, a trailing "/" matches directories only, a pattern without "/" matches a
// base name anywhere); .helmignore itself is left out. Negation
// ("!") is not supported and is an error rather than a silent difference.
func helmIgnore(dir string) (func(rel string, isDir bool) bool, error) {
	data, err := os.ReadFile(filepath.Join(dir, ".helmignore"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read .helmignore: %w", err)
	}
	type rule struct {
		glob    string
		dirOnly bool
	}
	var rules []rule
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "!") {
			return nil, fmt.Errorf(".helmignore: negated pattern %q not supported", line)
		}
		r := rule{glob: strings.TrimPrefix(line, "/")}
		if strings.HasSuffix(r.glob, "/") {
			r.glob, r.dirOnly = strings.TrimSuffix(r.glob, "/"), true
		}
		if _, err := path.Match(r.glob, ""); err != nil {
			return nil, fmt.Errorf(".helmignore: pattern %q: %w", line, err)
		}
		rules = append(rules, r)
	}
	return func(rel string, isDir bool) bool {
		if rel == ".helmignore" {
			return true
		}
		for _, r := range rules {
			if r.dirOnly && !isDir {
				continue
			}
			target := rel
			if !strings.Contains(r.glob, "/") {
				target = path.Base(rel)
			}
			if ok, _ := path.Match(r.glob, target); ok {
				return true
			}
		}
		return false
	}, nil
}

// setImageValues replaces `  <key>: ...` lines of the top-level `image:` block of a
// values.yaml with the quoted values and checks the result parses to them.
func setImageValues(data []byte, values map[string]string) ([]byte, error) {
	lines := strings.Split(string(data), "\n")
	inImage := false
	done := map[string]bool{}
	for i, l := range lines {
		if l == "" || strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		if !strings.HasPrefix(l, " ") {
			inImage = strings.TrimSpace(l) == "image:"
			continue
		}
		if !inImage || strings.HasPrefix(l, "   ") {
			continue
		}
		key, _, ok := strings.Cut(strings.TrimSpace(l), ":")
		if v, set := values[key]; ok && set {
			lines[i] = fmt.Sprintf("  %s: %q", key, v)
			done[key] = true
		}
	}
	out := []byte(strings.Join(lines, "\n"))
	var parsed struct {
		Image map[string]any `json:"image"`
	}
	if err := yaml.Unmarshal(out, &parsed); err != nil {
		return nil, fmt.Errorf("values.yaml after setting the image: %w", err)
	}
	for k, v := range values {
		if !done[k] || parsed.Image[k] != v {
			return nil, fmt.Errorf("values.yaml: cannot set image.%s (no `  %s:` line in the top-level image block)", k, k)
		}
	}
	return out, nil
}
