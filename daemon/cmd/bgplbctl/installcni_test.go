package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestInstallCNI(t *testing.T) {
	bin, conf := t.TempDir(), t.TempDir()
	src := filepath.Join(t.TempDir(), "bgplb")
	if err := os.WriteFile(src, []byte("#!plugin"), 0o600); err != nil {
		t.Fatal(err)
	}
	orig := `{"cniVersion":"1.0.0","name":"k8s","plugins":[{"type":"ptp","ipam":{"type":"host-local"}}]}`
	if err := os.WriteFile(filepath.Join(conf, "10-k8s.conflist"), []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := installPlugin(src, bin); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(bin, "bgplb")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("installed plugin: %v %v", fi, err)
	}
	for i, wantChanged := range []bool{true, false} {
		path, changed, err := chainPlugin(conf, map[string]any{"type": "bgplb"})
		if err != nil {
			t.Fatal(err)
		}
		if changed != wantChanged {
			t.Fatalf("run %d: changed = %v, want %v", i, changed, wantChanged)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			CNIVersion string           `json:"cniVersion"`
			Plugins    []map[string]any `json:"plugins"`
		}
		if err := json.Unmarshal(data, &c); err != nil {
			t.Fatal(err)
		}
		if c.CNIVersion != "1.0.0" || len(c.Plugins) != 2 || c.Plugins[0]["type"] != "ptp" || c.Plugins[1]["type"] != "bgplb" ||
			c.Plugins[0]["ipam"] == nil {
			t.Fatalf("run %d: conflist = %s", i, data)
		}
	}
	single := t.TempDir()
	if err := os.WriteFile(filepath.Join(single, "10.conf"), []byte(`{"type":"bridge"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := chainPlugin(single, map[string]any{"type": "bgplb"}); err == nil {
		t.Fatal("a single-plugin .conf was accepted")
	}
}

func TestUnchainPlugin(t *testing.T) {
	conf := t.TempDir()
	orig := `{"cniVersion":"1.0.0","name":"k8s","plugins":[{"type":"ptp"},{"type":"bgplb"},{"type":"portmap"}]}`
	path := filepath.Join(conf, "10-k8s.conflist")
	if err := os.WriteFile(path, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, wantChanged := range []bool{true, false} {
		_, changed, err := unchainPlugin(conf)
		if err != nil || changed != wantChanged {
			t.Fatalf("run %d: changed %v, %v; want %v", i, changed, err, wantChanged)
		}
		data, _ := os.ReadFile(path)
		var c struct {
			Name    string           `json:"name"`
			Plugins []map[string]any `json:"plugins"`
		}
		if err := json.Unmarshal(data, &c); err != nil {
			t.Fatal(err)
		}
		if c.Name != "k8s" || len(c.Plugins) != 2 || c.Plugins[0]["type"] != "ptp" || c.Plugins[1]["type"] != "portmap" {
			t.Fatalf("run %d: conflist = %s", i, data)
		}
	}
	if _, changed, err := unchainPlugin(t.TempDir()); err != nil || changed {
		t.Fatalf("empty conf dir: %v, %v", changed, err)
	}
}
