package main

import (
	"crypto/sha256"
	"debug/elf"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestImage builds the bgplb image index (both platforms; a cold arm64 cross build
// takes minutes, a cached one seconds), checks that a second build gives the same
// digest, pushes
// it to an in-process registry, pulls it back and runs the amd64 binaries from the
// pulled layers.
func TestImage(t *testing.T) {
	const testVersion = "v0.0.0-imagetest"
	created := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	o := defaultBuildOptions()
	o.Out, o.Version, o.Created, o.Images = t.TempDir(), testVersion, created, []string{"bgplb"}
	rev, err := git(".", "rev-parse", "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	o.Revision = rev
	start := time.Now()
	res, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s@%s in %v", res[0].Repo, res[0].Digest, time.Since(start).Round(time.Second))

	// Reproducible: a second build (compile and assembly) of the same inputs gives
	// the same index digest and the same archive bytes.
	o2 := o
	o2.Out = t.TempDir()
	start = time.Now()
	res2, err := Build(o2)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second build %s in %v", res2[0].Digest, time.Since(start).Round(time.Second))
	if res2[0].Digest != res[0].Digest {
		t.Errorf("second build: digest %s, first %s", res2[0].Digest, res[0].Digest)
	}
	if a, b := fileSum(t, res[0].Archive), fileSum(t, res2[0].Archive); a != b {
		t.Errorf("archives differ: %x vs %x", a, b)
	}

	// Push to an in-process registry and pull back.
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/bgplb/bgplb:" + testVersion
	pushed, err := Push(res[0].Layout, ref)
	if err != nil {
		t.Fatal(err)
	}
	if pushed.String() != res[0].Digest {
		t.Errorf("pushed digest %s, built %s", pushed, res[0].Digest)
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(r)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	if d, _ := idx.Digest(); d.String() != res[0].Digest {
		t.Errorf("pulled digest %s, built %s", d, res[0].Digest)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, m := range im.Manifests {
		platforms = append(platforms, m.Platform.OS+"/"+m.Platform.Architecture)
	}
	if strings.Join(platforms, ",") != "linux/amd64,linux/arm64" {
		t.Errorf("index platforms %v, want linux/amd64 and linux/arm64", platforms)
	}
	if im.Annotations[keyVersion] != testVersion {
		t.Errorf("index annotation %s = %q, want %q", keyVersion, im.Annotations[keyVersion], testVersion)
	}

	wantMachine := map[string]elf.Machine{"linux/amd64": elf.EM_X86_64, "linux/arm64": elf.EM_AARCH64}
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		img, err := PlatformImage(idx, p)
		if err != nil {
			t.Fatal(err)
		}
		checkConfig(t, p, img, o)
		dir := t.TempDir()
		files, err := ExtractPlatform(idx, p, dir, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(files) != 3 {
			t.Errorf("%s: extracted %v, want 3 files", p, files)
		}
		for _, bin := range []string{"usr/local/bin/bgplbd", "usr/local/bin/bgplbctl", "opt/bgplb/cni/bgplb"} {
			checkELF(t, filepath.Join(dir, bin), wantMachine[p])
		}
		if p != "linux/amd64" {
			continue
		}
		for _, c := range []struct {
			bin  string
			args []string
			env  []string
		}{
			{bin: "usr/local/bin/bgplbd", args: []string{"--version"}},
			{bin: "usr/local/bin/bgplbctl", args: []string{"--version"}},
			// A CNI plugin without CNI_COMMAND prints its about string.
			{bin: "opt/bgplb/cni/bgplb", env: []string{"CNI_COMMAND="}},
		} {
			cmd := exec.Command(filepath.Join(dir, c.bin), c.args...)
			cmd.Env = append(os.Environ(), c.env...)
			out, err := cmd.CombinedOutput()
			if err != nil && c.env == nil {
				t.Errorf("%s %v: %v\n%s", c.bin, c.args, err, out)
			}
			if !strings.Contains(string(out), testVersion) {
				t.Errorf("%s %v printed %q, want the version %s", c.bin, c.args, out, testVersion)
			}
		}
	}
}

func checkConfig(t *testing.T, platform string, img v1.Image, o BuildOptions) {
	t.Helper()
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OS+"/"+cfg.Architecture != platform {
		t.Errorf("%s: config says %s/%s", platform, cfg.OS, cfg.Architecture)
	}
	if strings.Join(cfg.Config.Entrypoint, " ") != "/usr/local/bin/bgplbd" {
		t.Errorf("%s: entrypoint %v", platform, cfg.Config.Entrypoint)
	}
	if !cfg.Created.Time.Equal(o.Created) {
		t.Errorf("%s: created %v, want %v", platform, cfg.Created.Time, o.Created)
	}
	want := map[string]string{keyVersion: o.Version, keyRevision: o.Revision, keySource: o.Source, keyCreated: "2026-12-01T12:00:00Z"}
	for k, v := range want {
		if cfg.Config.Labels[k] != v {
			t.Errorf("%s: label %s = %q, want %q", platform, k, cfg.Config.Labels[k], v)
		}
	}
	if len(o.Revision) != 40 {
		t.Errorf("revision %q is not a commit hash", o.Revision)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Errorf("%s: %d layers (%v), want 1", platform, len(layers), err)
	}
}

// checkELF asserts path is a static ELF executable for machine.
func checkELF(t *testing.T, path string, machine elf.Machine) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	defer f.Close()
	if f.Machine != machine {
		t.Errorf("%s: machine %v, want %v", path, f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s: has an interpreter: not a static binary", path)
		}
	}
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}
