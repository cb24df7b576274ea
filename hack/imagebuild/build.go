package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	defaultRepo          = "ghcr.io/bgplb/bgplb"
	defaultPodserverRepo = "ghcr.io/bgplb/podserver"
	defaultPauseRepo     = "ghcr.io/bgplb/pause"
	defaultSource        = "https://github.com/bgplb/bgplb"
)

// file is one binary of an image: the Go package it is built from and its path in
// the image.
type file struct {
	Pkg  string // import path below the module, e.g. ./daemon/cmd/bgplbd
	Path string // absolute path in the image
}

// imageSpec describes one image.
type imageSpec struct {
	Name       string
	Title      string
	Files      []file
	Entrypoint []string
}

// specs are the images imagebuild knows. The in-image paths are an interface: the
// DaemonSet and the chart run them.
var specs = map[string]imageSpec{
	"bgplb": {
		Name:  "bgplb",
		Title: "bgplb: BGP LoadBalancer for Kubernetes (bgplbd, bgplbctl, CNI plugin)",
		Files: []file{
			{Pkg: "./daemon/cmd/bgplbd", Path: "/usr/local/bin/bgplbd"},
			{Pkg: "./daemon/cmd/bgplbctl", Path: "/usr/local/bin/bgplbctl"},
			{Pkg: "./plugins/bgplb", Path: "/opt/bgplb/cni/bgplb"},
		},
		Entrypoint: []string{"/usr/local/bin/bgplbd"},
	},
	"podserver": {
		Name:       "podserver",
		Title:      "bgplb conformance pod server",
		Files:      []file{{Pkg: "./conformance/podserver", Path: "/usr/local/bin/podserver"}},
		Entrypoint: []string{"/usr/local/bin/podserver"},
	},
	// pause is the sandbox image of the lab's real nodes (containerd's sandbox_image);
	// not part of the default set nor of a release.
	"pause": {
		Name:       "pause",
		Title:      "bgplb lab pause (sandbox) image",
		Files:      []file{{Pkg: "./hack/imagebuild/pause", Path: "/pause"}},
		Entrypoint: []string{"/pause"},
	},
}

// BuildOptions are the inputs of Build.
type BuildOptions struct {
	// ModuleDir is the repository root (default: found from the working directory).
	ModuleDir string
	// Out receives <Out>/<image> (OCI layout), <Out>/<image>.tar (OCI archive) and
	// <Out>/bin/linux_<arch>/ (the compiled binaries).
	Out string
	// Version is injected as main.version and labelled (default: git describe).
	Version string
	// Revision is the commit (default: git rev-parse HEAD).
	Revision string
	// Created is the labelled creation time and every file's mtime (default:
	// $SOURCE_DATE_EPOCH, else the commit time).
	Created time.Time
	Source  string
	// Repos maps an image name to its repository (names the image in its archive).
	Repos     map[string]string
	Images    []string
	Platforms []string
	// SkipArchive leaves out <Out>/<image>.tar.
	SkipArchive bool
}

func defaultBuildOptions() BuildOptions {
	return BuildOptions{
		Out:       filepath.Join("_output", "image"),
		Source:    defaultSource,
		Repos:     map[string]string{"bgplb": defaultRepo, "podserver": defaultPodserverRepo, "pause": defaultPauseRepo},
		Images:    []string{"bgplb", "podserver"},
		Platforms: []string{"linux/amd64", "linux/arm64"},
	}
}

// Result names what Build wrote for one image.
type Result struct {
	Name, Repo, Layout, Archive string
	Digest                      string
}

// Build compiles the binaries of o.Images for o.Platforms and writes each image's
// OCI layout and archive.
func Build(o BuildOptions) ([]Result, error) {
	if err := o.complete(); err != nil {
		return nil, err
	}
	var pkgs []string
	for _, name := range o.Images {
		spec, ok := specs[name]
		if !ok {
			return nil, fmt.Errorf("unknown image %q", name)
		}
		for _, f := range spec.Files {
			if !slices.Contains(pkgs, f.Pkg) {
				pkgs = append(pkgs, f.Pkg)
			}
		}
	}
	binDirs := map[string]string{}
	for _, p := range o.Platforms {
		dir := filepath.Join(o.Out, "bin", strings.ReplaceAll(p, "/", "_"))
		if err := compile(o.ModuleDir, p, o.Version, dir, pkgs); err != nil {
			return nil, err
		}
		binDirs[p] = dir
	}
	var res []Result
	for _, name := range o.Images {
		spec := specs[name]
		idx, err := assemble(spec, o, binDirs)
		if err != nil {
			return nil, err
		}
		r := Result{Name: name, Repo: o.Repos[name], Layout: filepath.Join(o.Out, name)}
		if err := writeLayout(r.Layout, idx, r.Repo, o.Version); err != nil {
			return nil, err
		}
		d, err := idx.Digest()
		if err != nil {
			return nil, fmt.Errorf("digest image index %s: %w", name, err)
		}
		r.Digest = d.String()
		if err := os.WriteFile(r.Layout+".digest", []byte(r.Digest+"\n"), 0o644); err != nil {
			return nil, fmt.Errorf("write digest of %s: %w", name, err)
		}
		if !o.SkipArchive {
			r.Archive = r.Layout + ".tar"
			if err := WriteArchive(r.Layout, r.Archive); err != nil {
				return nil, err
			}
		}
		res = append(res, r)
	}
	return res, nil
}

func (o *BuildOptions) complete() error {
	if o.ModuleDir == "" {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			return fmt.Errorf("find the module: %w", err)
		}
		mod := strings.TrimSpace(string(out))
		if mod == "" || mod == os.DevNull {
			return fmt.Errorf("find the module: run imagebuild inside the bgplb repository")
		}
		o.ModuleDir = filepath.Dir(mod)
	}
	if o.Version == "" {
		v, err := git(o.ModuleDir, "describe", "--tags", "--always", "--dirty")
		if err != nil {
			return err
		}
		o.Version = v
	}
	if o.Revision == "" {
		r, err := git(o.ModuleDir, "rev-parse", "HEAD")
		if err != nil {
			return err
		}
		o.Revision = r
	}
	if o.Created.IsZero() {
		t, err := sourceDateEpoch()
		if err != nil {
			return err
		}
		if t.IsZero() {
			ct, err := git(o.ModuleDir, "log", "-1", "--format=%ct", "HEAD")
			if err != nil {
				return err
			}
			sec, err := strconv.ParseInt(ct, 10, 64)
			if err != nil {
				return fmt.Errorf("parse commit time %q: %w", ct, err)
			}
			t = time.Unix(sec, 0)
		}
		o.Created = t.UTC()
	}
	if len(o.Images) == 0 || len(o.Platforms) == 0 {
		return fmt.Errorf("no images or no platforms to build")
	}
	for _, p := range o.Platforms {
		if _, _, err := parsePlatform(p); err != nil {
			return err
		}
	}
	abs, err := filepath.Abs(o.Out)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", o.Out, err)
	}
	o.Out = abs
	return nil
}

// sourceDateEpoch returns $SOURCE_DATE_EPOCH (reproducible-builds.org), or the
// zero time when it is unset.
func sourceDateEpoch() (time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return time.Time{}, nil
	}
	sec, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse SOURCE_DATE_EPOCH %q: %w", v, err)
	}
	return time.Unix(sec, 0).UTC(), nil
}

func parsePlatform(p string) (goos, goarch string, err error) {
	goos, goarch, ok := strings.Cut(p, "/")
	if !ok || goos != "linux" || (goarch != "amd64" && goarch != "arm64") {
		return "", "", fmt.Errorf("platform %q: only linux/amd64 and linux/arm64 are built", p)
	}
	return goos, goarch, nil
}

// compile builds pkgs for platform into dir: static, trimmed paths, no build ID, the
// version injected, baseline instruction sets, so that a commit yields the same bytes.
func compile(moduleDir, platform, version, dir string, pkgs []string) error {
	goos, goarch, err := parsePlatform(platform)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	ldflags := fmt.Sprintf("-s -w -buildid= -X main.version=%s -X main.buildVersion=%s", version, version)
	args := append([]string{"build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", dir + "/"}, pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch,
		"GOAMD64=v1", "GOARM64=v8.0", "GOFLAGS=-mod=readonly")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s for %s: %w\n%s", strings.Join(pkgs, " "), platform, err, stderr.String())
	}
	return nil
}

func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}
