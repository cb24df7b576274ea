package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/spf13/cobra"

	"github.com/bgplb/bgplb/bpf"
)

func execute(t *testing.T, cmd *cobra.Command, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		t.Fatalf("%s %v: %v", cmd.Name(), args, err)
	}
	return out.String()
}

func types(t *testing.T, path string) []string {
	t.Helper()
	list, err := libcni.ConfListFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ts []string
	for _, p := range list.Plugins {
		ts = append(ts, p.Network.Type)
	}
	return ts
}

// TestInstallAndUninstallCNI: install-cni chains (idempotent), --datapath=false unchains
// byte for byte, uninstall-cni leaves the conflist as before install, no binary, no pins.
func TestInstallAndUninstallCNI(t *testing.T) {
	bin, conf := t.TempDir(), t.TempDir()
	src := filepath.Join(t.TempDir(), "bgplb")
	if err := os.WriteFile(src, []byte("#!plugin"), 0o600); err != nil {
		t.Fatal(err)
	}
	orig := `{"cniVersion":"1.0.0","name":"k8s","plugins":[{"type":"ptp","ipam":{"type":"host-local"}}]}`
	primary := filepath.Join(conf, "10-k8s.conflist")
	if err := os.WriteFile(primary, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	install := []string{"--plugin", src, "--cni-bin-dir", bin, "--cni-conf-dir", conf}
	for i, want := range []string{"chained bgplb into", "already chains bgplb"} {
		if out := execute(t, newInstallCNICmd(), install...); !strings.Contains(out, want) {
			t.Fatalf("run %d: output %q, want %q", i, out, want)
		}
		if got := types(t, primary); !reflect.DeepEqual(got, []string{"ptp", "bgplb"}) {
			t.Fatalf("run %d: plugins %v", i, got)
		}
	}
	if fi, err := os.Stat(filepath.Join(bin, "bgplb")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("installed plugin: %v %v", fi, err)
	}

	execute(t, newInstallCNICmd(), append(install, "--datapath=false")...)
	if b, _ := os.ReadFile(primary); string(b) != orig {
		t.Fatalf("--datapath=false left %s", b)
	}
	execute(t, newInstallCNICmd(), append(install, "--datapath=false")...)
	if b, _ := os.ReadFile(primary); string(b) != orig {
		t.Fatalf("a second --datapath=false left %s", b)
	}

	pinDir := "" // real pins when bpffs is there (root)
	if os.Geteuid() == 0 {
		root := filepath.Join("/sys/fs/bpf", fmt.Sprintf("bgplbctl-test-%d", os.Getpid()))
		if err := os.MkdirAll(root, 0o700); err == nil {
			t.Cleanup(func() { os.RemoveAll(root) })
			pinDir = filepath.Join(root, "bgplb")
			m, err := bpf.OpenMaps(pinDir)
			if err != nil {
				t.Fatalf("pin maps: %v", err)
			}
			m.Close()
		}
	}
	execute(t, newInstallCNICmd(), install...)
	execute(t, newUninstallCNICmd(), "--cni-bin-dir", bin, "--cni-conf-dir", conf, "--bpf-pin-dir", pinDir)
	entries, _ := os.ReadDir(conf)
	if b, _ := os.ReadFile(primary); string(b) != orig || len(entries) != 1 {
		t.Fatalf("after uninstall-cni: %s (%d entries in the conf dir)", b, len(entries))
	}
	if _, err := os.Stat(filepath.Join(bin, "bgplb")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("binary after uninstall-cni: %v", err)
	}
	if pinDir == "" {
		t.Log("not root: pins not checked")
	} else if _, err := os.Stat(pinDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pins after uninstall-cni: %v", err)
	}
}

func TestInstallCNIErrors(t *testing.T) {
	src := filepath.Join(t.TempDir(), "bgplb")
	if err := os.WriteFile(src, []byte("#!plugin"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, files := range map[string]map[string]string{
		"no configuration":     {},
		"conflist in a .json":  {"10.json": `{"name":"x","plugins":[{"type":"ptp"}]}`},
		"conflist, no plugins": {"10.conflist": `{"name":"x","plugins":[]}`},
	} {
		conf := t.TempDir()
		for f, data := range files {
			if err := os.WriteFile(filepath.Join(conf, f), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cmd := newInstallCNICmd()
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		cmd.SetArgs([]string{"--plugin", src, "--cni-bin-dir", t.TempDir(), "--cni-conf-dir", conf})
		if err := cmd.Execute(); err == nil {
			t.Errorf("%s: install-cni succeeded", name)
		}
	}
}
