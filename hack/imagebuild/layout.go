package main

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// writeLayout replaces dir with an OCI image layout whose index.json points at idx,
// named repo:tag for tools that load the layout (docker load, ctr import, skopeo).
func writeLayout(dir string, idx v1.ImageIndex, repo, tag string) error {
	// A layout left by an earlier build would keep its blobs; start empty so the
	// layout (and its archive) hold exactly this build.
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove old layout %s: %w", dir, err)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("create layout %s: %w", dir, err)
	}
	ann := map[string]string{keyRefName: tagOf(tag)}
	if repo != "" {
		ann[keyImageName] = repo + ":" + tagOf(tag)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(ann)); err != nil {
		return fmt.Errorf("write layout %s: %w", dir, err)
	}
	return nil
}

// tagOf turns a version into a valid tag (git describe output is one already, but
// a version with a "+" is not).
func tagOf(v string) string { return strings.ReplaceAll(v, "+", "_") }

// ReadLayout returns the image index an imagebuild layout holds (the one manifest of
// its index.json).
func ReadLayout(dir string) (v1.ImageIndex, error) {
	outer, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("read layout %s: %w (run `make image`)", dir, err)
	}
	im, err := outer.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("read index.json of %s: %w", dir, err)
	}
	if len(im.Manifests) != 1 {
		return nil, fmt.Errorf("layout %s holds %d manifests, want 1 image index", dir, len(im.Manifests))
	}
	idx, err := outer.ImageIndex(im.Manifests[0].Digest)
	if err != nil {
		return nil, fmt.Errorf("read image index of %s: %w", dir, err)
	}
	return idx, nil
}

// LayoutDigest returns the digest of the image index in dir.
func LayoutDigest(dir string) (v1.Hash, error) {
	idx, err := ReadLayout(dir)
	if err != nil {
		return v1.Hash{}, err
	}
	d, err := idx.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("digest image index of %s: %w", dir, err)
	}
	return d, nil
}

// Push writes the image index in dir to ref with the credentials of the default
// keychain (docker/podman config) and returns its digest.
func Push(dir, ref string) (v1.Hash, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("parse image reference %q: %w", ref, err)
	}
	idx, err := ReadLayout(dir)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := remote.WriteIndex(r, idx, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", ref, err)
	}
	return idx.Digest()
}

// PlatformImage returns the image for platform ("linux/amd64") of idx.
func PlatformImage(idx v1.ImageIndex, platform string) (v1.Image, error) {
	goos, goarch, ok := strings.Cut(platform, "/")
	if !ok {
		return nil, fmt.Errorf("platform %q: want os/arch", platform)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("read image index: %w", err)
	}
	for _, m := range im.Manifests {
		if m.Platform != nil && m.Platform.OS == goos && m.Platform.Architecture == goarch {
			img, err := idx.Image(m.Digest)
			if err != nil {
				return nil, fmt.Errorf("read image %s: %w", m.Digest, err)
			}
			return img, nil
		}
	}
	return nil, fmt.Errorf("the image index has no %s image", platform)
}

// ExtractPlatform unpacks the layers of platform's image into out and returns the
// files written. With flat, regular files land in out by base name (a bin
// directory); otherwise at their image paths below out.
func ExtractPlatform(idx v1.ImageIndex, platform, out string, flat bool) ([]string, error) {
	img, err := PlatformImage(idx, platform)
	if err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("list layers: %w", err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", out, err)
	}
	var files []string
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, fmt.Errorf("open layer: %w", err)
		}
		fs, err := untar(rc, out, flat)
		rc.Close()
		if err != nil {
			return nil, err
		}
		files = append(files, fs...)
	}
	return files, nil
}

func untar(r io.Reader, out string, flat bool) ([]string, error) {
	var files []string
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read layer: %w", err)
		}
		clean := path.Clean("/" + hdr.Name) // rooted: ".." cannot leave out
		if clean == "/" {
			continue
		}
		dst := filepath.Join(out, filepath.FromSlash(clean))
		if flat {
			dst = filepath.Join(out, path.Base(clean))
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if !flat {
				if err := os.MkdirAll(dst, 0o755); err != nil {
					return nil, fmt.Errorf("create %s: %w", dst, err)
				}
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return nil, fmt.Errorf("create %s: %w", filepath.Dir(dst), err)
			}
			if err := writeFile(dst, tr, hdr.FileInfo().Mode().Perm()); err != nil {
				return nil, err
			}
			files = append(files, dst)
		default:
			return nil, fmt.Errorf("layer entry %s: type %q not supported", hdr.Name, hdr.Typeflag)
		}
	}
}

// writeFile replaces dst (a running binary may hold the old one) with r's content.
func writeFile(dst string, r io.Reader, perm fs.FileMode) error {
	tmp := dst + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}

// WriteArchive writes the OCI layout dir as an OCI archive (a tar of the layout, as
// `docker load` ≥ 25, `podman load`, `skopeo copy oci-archive:` and `ctr import`
// read it). Entries are sorted with fixed owners and mtimes, so equal layouts give
// equal archives.
func WriteArchive(dir, out string) error {
	if _, err := ReadLayout(dir); err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("create %s: %w", out, err)
	}
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		hdr := &tar.Header{Name: filepath.ToSlash(rel), ModTime: time.Unix(0, 0), Mode: 0o644, Typeflag: tar.TypeReg}
		if d.IsDir() {
			hdr.Name, hdr.Mode, hdr.Typeflag = hdr.Name+"/", 0o755, tar.TypeDir
			return tw.WriteHeader(hdr)
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		st, err := src.Stat()
		if err != nil {
			return err
		}
		hdr.Size = st.Size()
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err = io.Copy(tw, src)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write archive %s: %w", out, err)
	}
	return nil
}
