package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// OCI annotation and label keys (image-spec annotations.md).
const (
	keySource   = "org.opencontainers.image.source"
	keyRevision = "org.opencontainers.image.revision"
	keyVersion  = "org.opencontainers.image.version"
	keyCreated  = "org.opencontainers.image.created"
	keyTitle    = "org.opencontainers.image.title"
	keyLicenses = "org.opencontainers.image.licenses"
	keyRefName  = "org.opencontainers.image.ref.name"
	// keyImageName names the image for `docker load` / `ctr import` of an OCI archive.
	keyImageName = "io.containerd.image.name"
)

// assemble builds spec's image index from the binaries in binDirs (platform → dir
// holding the binaries by base name).
func assemble(spec imageSpec, o BuildOptions, binDirs map[string]string) (v1.ImageIndex, error) {
	labels := map[string]string{
		keySource:   o.Source,
		keyRevision: o.Revision,
		keyVersion:  o.Version,
		keyCreated:  o.Created.Format("2006-01-02T15:04:05Z"),
		keyTitle:    spec.Title,
		keyLicenses: "Apache-2.0",
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range o.Platforms {
		goos, goarch, err := parsePlatform(p)
		if err != nil {
			return nil, err
		}
		img, err := platformImage(spec, o, binDirs[p], goos, goarch, labels)
		if err != nil {
			return nil, fmt.Errorf("image %s for %s: %w", spec.Name, p, err)
		}
		plat := &v1.Platform{OS: goos, Architecture: goarch}
		if goarch == "arm64" {
			plat.Variant = "v8"
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: plat}})
	}
	ann, ok := mutate.Annotations(idx, labels).(v1.ImageIndex)
	if !ok {
		return nil, fmt.Errorf("annotate index %s: unexpected type", spec.Name)
	}
	return ann, nil
}

func platformImage(spec imageSpec, o BuildOptions, binDir, goos, goarch string, labels map[string]string) (v1.Image, error) {
	layerTar, err := layerTarball(spec, o, binDir)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("make layer: %w", err)
	}
	cfg := &v1.ConfigFile{
		Architecture: goarch,
		OS:           goos,
		Created:      v1.Time{Time: o.Created},
		Config: v1.Config{
			Entrypoint: spec.Entrypoint,
			Env:        []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
			Labels:     labels,
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	if goarch == "arm64" {
		cfg.Variant = "v8"
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("set config: %w", err)
	}
	var names []string
	for _, f := range spec.Files {
		names = append(names, f.Path)
	}
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History: v1.History{
			Created:   v1.Time{Time: o.Created},
			CreatedBy: "imagebuild: " + strings.Join(names, " "),
			Comment:   "static Go binaries, version " + o.Version,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	return img, nil
}

// layerTarball returns the uncompressed layer: the parent directories and the
// binaries, sorted, owned by root, with o.Created as every mtime.
func layerTarball(spec imageSpec, o BuildOptions, binDir string) ([]byte, error) {
	dirs := map[string]bool{}
	for _, f := range spec.Files {
		for d := path.Dir(f.Path); d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	type entry struct {
		name, src string
	}
	var entries []entry
	for d := range dirs {
		entries = append(entries, entry{name: strings.TrimPrefix(d, "/") + "/"})
	}
	for _, f := range spec.Files {
		entries = append(entries, entry{name: strings.TrimPrefix(f.Path, "/"), src: filepath.Join(binDir, path.Base(f.Pkg))})
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.name, b.name) })

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, ModTime: o.Created}
		var data []byte
		if e.src == "" {
			hdr.Typeflag, hdr.Mode = tar.TypeDir, 0o755
		} else {
			b, err := os.ReadFile(e.src)
			if err != nil {
				return nil, fmt.Errorf("read binary: %w", err)
			}
			data = b
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, 0o755, int64(len(b))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("write tar header %s: %w", e.name, err)
		}
		if _, err := tw.Write(data); err != nil {
			return nil, fmt.Errorf("write %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close layer tar: %w", err)
	}
	return buf.Bytes(), nil
}
