package cnichain

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"sync"
	"testing"

	"github.com/containernetworking/cni/libcni"
)

const primaryConflist = `{
	"cniVersion": "1.0.0",
	"name": "k8s-pod-network",
	"plugins": [
		{"type": "ptp", "mtu": 1500, "ipam": {"type": "host-local", "ranges": [[{"subnet": "198.19.1.0/24"}]]}},
		{"type": "portmap", "capabilities": {"portMappings": true}}
	]
}
`

var testEntry = map[string]any{"daemonSocket": "/run/bgplb/bgplbd.sock", "bpfPinDir": "/sys/fs/bpf/bgplb"}

func writeFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

// pluginTypes loads path with libcni, as a runtime does, and returns its plugins' types.
func pluginTypes(t *testing.T, path string) []string {
	t.Helper()
	list, err := libcni.ConfListFromFile(path)
	if err != nil {
		t.Fatalf("libcni cannot load %s: %v", path, err)
	}
	var types []string
	for _, p := range list.Plugins {
		types = append(types, p.Network.Type)
	}
	return types
}

// snapshot returns every file of dir (recursively, relative name → content + mode).
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = fi.Mode().String() + " " + string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPrimaryIsLexicographicallyFirst(t *testing.T) {
	dir := t.TempDir()
	if _, err := Primary(dir); !errors.Is(err, ErrNoConfig) {
		t.Fatalf("empty dir: err = %v, want ErrNoConfig", err)
	}
	writeFile(t, filepath.Join(dir, "20-b.conflist"), primaryConflist, 0o644)
	writeFile(t, filepath.Join(dir, "10-a.json"), `{"cniVersion":"1.0.0","name":"a","type":"bridge"}`, 0o644)
	writeFile(t, filepath.Join(dir, "05-ignored.txt"), "x", 0o644)
	if err := os.Mkdir(filepath.Join(dir, "00-dir.conf"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := Primary(dir)
	if err != nil || got != filepath.Join(dir, "10-a.json") {
		t.Fatalf("Primary = %q, %v; want 10-a.json", got, err)
	}
}

func TestChainConflist(t *testing.T) {
	dir := t.TempDir()
	primary := filepath.Join(dir, "10-k8s.conflist")
	other := filepath.Join(dir, "20-other.conflist")
	writeFile(t, primary, primaryConflist, 0o640)
	writeFile(t, other, primaryConflist, 0o644)

	res, err := Chain(dir, testEntry)
	if err != nil || !res.Changed || res.Path != primary {
		t.Fatalf("Chain = %+v, %v", res, err)
	}
	if got, want := pluginTypes(t, primary), []string{"ptp", "portmap", "bgplb"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("plugins = %v, want %v", got, want)
	}
	list, _ := libcni.ConfListFromFile(primary)
	if list.Name != "k8s-pod-network" || list.CNIVersion != "1.0.0" {
		t.Fatalf("top-level fields changed: name %q version %q", list.Name, list.CNIVersion)
	}
	if !bytes.Contains(list.Plugins[2].Bytes, []byte(`"daemonSocket":"/run/bgplb/bgplbd.sock"`)) {
		t.Fatalf("bgplb entry = %s", list.Plugins[2].Bytes)
	}
	if fi, _ := os.Stat(primary); fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode = %v, want 0640 kept", fi.Mode().Perm())
	}
	if got := pluginTypes(t, other); !reflect.DeepEqual(got, []string{"ptp", "portmap"}) {
		t.Fatalf("the second file was chained too: %v", got)
	}
	before, _ := os.ReadFile(primary)
	res, err = Chain(dir, testEntry)
	after, _ := os.ReadFile(primary)
	if err != nil || res.Changed || !bytes.Equal(before, after) {
		t.Fatalf("second Chain = %+v, %v; file changed: %v", res, err, !bytes.Equal(before, after))
	}
	if ok, err := IsChained(dir); !ok || err != nil {
		t.Fatalf("IsChained = %v, %v", ok, err)
	}
}

func TestChainKeepsBgplbLastAndCurrent(t *testing.T) {
	dir := t.TempDir()
	primary := filepath.Join(dir, "10-k8s.conflist")
	// A primary CNI that kept our entry but added a plugin after it.
	writeFile(t, primary, `{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"ptp"},{"type":"bgplb"},{"type":"tuning"}]}`, 0o644)
	if _, err := Chain(dir, testEntry); err != nil {
		t.Fatal(err)
	}
	if got, want := pluginTypes(t, primary), []string{"ptp", "tuning", "bgplb"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("plugins = %v, want %v", got, want)
	}
	// A changed entry (an upgrade with other paths) replaces the old one.
	res, err := Chain(dir, map[string]any{"daemonSocket": "/run/other.sock"})
	if err != nil || !res.Changed {
		t.Fatalf("Chain with a new entry = %+v, %v", res, err)
	}
	list, _ := libcni.ConfListFromFile(primary)
	if n := len(list.Plugins); n != 3 || !bytes.Contains(list.Plugins[2].Bytes, []byte("/run/other.sock")) {
		t.Fatalf("entry not replaced: %d plugins, last %s", n, list.Plugins[n-1].Bytes)
	}
	// Unchain cannot know the pristine file (it had our entry): it removes ours only.
	if _, err := Unchain(dir); err != nil {
		t.Fatal(err)
	}
	if got, want := pluginTypes(t, primary), []string{"ptp", "tuning"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after Unchain plugins = %v, want %v", got, want)
	}
}

func TestChainConvertsSingleConfAndUnchainRestoresIt(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "10-bridge.conf")
	orig := "{\"cniVersion\": \"0.4.0\", \"name\": \"mynet\", \"type\": \"bridge\",\n \"ipam\": {\"type\": \"host-local\"}}\n"
	writeFile(t, conf, orig, 0o600)
	writeFile(t, filepath.Join(dir, "99-later.conflist"), primaryConflist, 0o644)
	before := snapshot(t, dir)

	res, err := Chain(dir, testEntry)
	if err != nil || res.Path != filepath.Join(dir, "10-bridge.conflist") {
		t.Fatalf("Chain = %+v, %v", res, err)
	}
	if _, err := os.Stat(conf); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the single-plugin file is still there: %v", err)
	}
	if p, _ := Primary(dir); p != res.Path {
		t.Fatalf("Primary = %s, want the converted %s", p, res.Path)
	}
	if got, want := pluginTypes(t, res.Path), []string{"bridge", "bgplb"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("plugins = %v, want %v", got, want)
	}
	list, _ := libcni.ConfListFromFile(res.Path)
	if list.Name != "mynet" || list.CNIVersion != "0.4.0" {
		t.Fatalf("converted name %q version %q", list.Name, list.CNIVersion)
	}

	if res, err := Unchain(dir); err != nil || !res.Changed {
		t.Fatalf("Unchain = %+v, %v", res, err)
	}
	if after := snapshot(t, dir); !reflect.DeepEqual(before, after) {
		t.Fatalf("conf dir after Unchain differs:\nbefore %v\nafter  %v", before, after)
	}
}

func TestUnchainRestoresByteIdentical(t *testing.T) {
	dir := t.TempDir()
	primary := filepath.Join(dir, "10-k8s.conflist")
	writeFile(t, primary, primaryConflist, 0o644) // tabs, key order: re-encoding would change them
	before := snapshot(t, dir)
	if _, err := Chain(dir, testEntry); err != nil {
		t.Fatal(err)
	}
	if _, err := Chain(dir, map[string]any{"logFile": "/tmp/x"}); err != nil { // a second write of ours
		t.Fatal(err)
	}
	if res, err := Unchain(dir); err != nil || !res.Changed {
		t.Fatalf("Unchain = %+v, %v", res, err)
	}
	if after := snapshot(t, dir); !reflect.DeepEqual(before, after) {
		t.Fatalf("conf dir after Unchain differs:\nbefore %q\nafter  %q", before, after)
	}
	if res, err := Unchain(dir); err != nil || res.Changed {
		t.Fatalf("second Unchain = %+v, %v", res, err)
	}
}

func TestUnchainAfterPrimaryRewriteRemovesOnlyOurs(t *testing.T) {
	dir := t.TempDir()
	primary := filepath.Join(dir, "10-k8s.conflist")
	writeFile(t, primary, primaryConflist, 0o644)
	if _, err := Chain(dir, testEntry); err != nil {
		t.Fatal(err)
	}
	// The primary CNI edits its file and keeps our entry: the pristine copy is stale.
	writeFile(t, primary, `{"cniVersion":"1.0.0","name":"k8s-pod-network","plugins":[{"type":"ptp","mtu":9000},{"type":"bgplb"}]}`, 0o644)
	if _, err := Unchain(dir); err != nil {
		t.Fatal(err)
	}
	list, err := libcni.ConfListFromFile(primary)
	if err != nil || len(list.Plugins) != 1 || !bytes.Contains(list.Plugins[0].Bytes, []byte("9000")) {
		t.Fatalf("after Unchain: %v %+v", err, list)
	}
	if _, err := os.Stat(filepath.Join(dir, stateDirName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("state dir left behind: %v", err)
	}
}

func TestChainErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "10-bad.conflist"), `{"name":"x","plugins":[]}`, 0o644)
	if _, err := Chain(dir, testEntry); err == nil {
		t.Fatal("a conflist without plugins was chained")
	}
	dir = t.TempDir()
	writeFile(t, filepath.Join(dir, "10-x.json"), `{"name":"x","plugins":[{"type":"ptp"}]}`, 0o644)
	if _, err := Chain(dir, testEntry); err == nil {
		t.Fatal("a .json conflist (which runtimes load as a single plugin without type) was chained")
	}
	dir = t.TempDir()
	writeFile(t, filepath.Join(dir, "10-x.conf"), `{"cniVersion":"1.0.0","name":"x","type":"bridge"}`, 0o644)
	writeFile(t, filepath.Join(dir, "10-x.conflist"), primaryConflist, 0o644)
	if _, err := Chain(dir, testEntry); err == nil {
		t.Fatal("converting 10-x.conf overwrote a 10-x.conflist bgplb did not write")
	}
	files, _ := os.ReadDir(dir)
	var names []string
	for _, f := range files {
		names = append(names, f.Name())
	}
	sort.Strings(names)
	if !reflect.DeepEqual(names, []string{"10-x.conf", "10-x.conflist"}) {
		t.Fatalf("files after a refused Chain: %v", names)
	}
}

// TestConcurrentChainAndUnchain: writers in parallel (an init container and a daemon
// during a rolling update) leave one valid conflist, and Unchain still restores the
// original bytes.
func TestConcurrentChainAndUnchain(t *testing.T) {
	dir := t.TempDir()
	primary := filepath.Join(dir, "10-k8s.conflist")
	writeFile(t, primary, primaryConflist, 0o644)
	before := snapshot(t, dir)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 10 {
				if _, err := Chain(dir, map[string]any{"logFile": fmt.Sprintf("/tmp/%d-%d", i, j)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got, want := pluginTypes(t, primary), []string{"ptp", "portmap", "bgplb"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("plugins = %v, want %v", got, want)
	}
	if _, err := Unchain(dir); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, dir); !reflect.DeepEqual(before, after) {
		t.Fatalf("conf dir after Unchain differs:\nbefore %q\nafter  %q", before, after)
	}
}

// TestChainReconvertsARewrittenConf: after the conversion the primary CNI writes its
// .conf again (it sorts first again): Chain converts it again, and Unchain brings back
// the newest .conf.
func TestChainReconvertsARewrittenConf(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "10-bridge.conf")
	writeFile(t, conf, `{"cniVersion":"1.0.0","name":"mynet","type":"bridge","mtu":1500}`, 0o644)
	if _, err := Chain(dir, testEntry); err != nil {
		t.Fatal(err)
	}
	newer := `{"cniVersion":"1.0.0","name":"mynet","type":"bridge","mtu":9000}`
	writeFile(t, conf, newer, 0o644)
	before := snapshot(t, dir)
	delete(before, filepath.Join(stateDirName, "chain.json"))
	delete(before, "10-bridge.conflist") // our stale conversion; Unchain removes it
	res, err := Chain(dir, testEntry)
	if err != nil || res.Path != filepath.Join(dir, "10-bridge.conflist") {
		t.Fatalf("Chain = %+v, %v", res, err)
	}
	list, err := libcni.ConfListFromFile(res.Path)
	if err != nil || len(list.Plugins) != 2 || !bytes.Contains(list.Plugins[0].Bytes, []byte("9000")) {
		t.Fatalf("re-converted conflist: %v %+v", err, list)
	}
	if _, err := Unchain(dir); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, dir); !reflect.DeepEqual(before, after) {
		t.Fatalf("after Unchain:\nwant %q\ngot  %q", before, after)
	}
}
