package cnichain

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/bgplb/bgplb/bpf"
	"github.com/bgplb/bgplb/internal/poll"
)

// startLoop runs l until the test ends.
func startLoop(t *testing.T, l *Loop) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := l.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// tick is how often the tests poll the conf dir.
const tick = 10 * time.Millisecond

func chained(dir string) bool {
	ok, err := IsChained(dir)
	return err == nil && ok
}

func pluginSource(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "bgplb")
	writeFile(t, src, "#!/bin/sh\necho plugin\n", 0o755)
	return src
}

// TestRunRechainsAfterPrimaryRewrite is the acceptance test of the loop: a primary CNI
// that rewrites its conflist without bgplb is re-chained within 5 s. The resync is far
// longer than that, so the figure measures the fsnotify path.
func TestRunRechainsAfterPrimaryRewrite(t *testing.T) {
	confDir, binDir := t.TempDir(), t.TempDir()
	primary := filepath.Join(confDir, "10-k8s.conflist")
	writeFile(t, primary, primaryConflist, 0o644)
	startLoop(t, &Loop{ConfDir: confDir, BinDir: binDir, PluginBinary: pluginSource(t), Entry: testEntry,
		Enabled: true, Resync: time.Hour})
	poll.Eventually(t, 5*time.Second, tick, "first chaining", func() bool { return chained(confDir) })
	if !PluginInstalled(binDir) {
		t.Fatal("the plugin binary was not installed")
	}

	rewrites := map[string]func(){
		// Most CNIs write a temp file and rename it over the old one.
		"rename": func() {
			tmp := filepath.Join(confDir, ".tmp-primary")
			writeFile(t, tmp, primaryConflist, 0o644)
			if err := os.Rename(tmp, primary); err != nil {
				t.Fatal(err)
			}
		},
		// Some truncate and write in place.
		"in place": func() { writeFile(t, primary, primaryConflist, 0o644) },
		// Some delete the file and write a new one, under a new name.
		"replace": func() {
			if err := os.Remove(primary); err != nil {
				t.Fatal(err)
			}
			primary = filepath.Join(confDir, "05-k8s.conflist")
			writeFile(t, primary, primaryConflist, 0o644)
		},
	}
	for _, name := range []string{"rename", "in place", "replace"} {
		rewrites[name]()
		if got := pluginTypes(t, primary); len(got) != 2 {
			t.Fatalf("%s: the rewrite kept bgplb: %v", name, got)
		}
		start := time.Now()
		poll.Eventually(t, 5*time.Second, tick, name+": re-chained", func() bool { return chained(confDir) })
		took := time.Since(start)
		if p, _ := Primary(confDir); p != primary {
			t.Fatalf("%s: primary is %s, want %s", name, p, primary)
		}
		if got, want := pluginTypes(t, primary), []string{"ptp", "portmap", "bgplb"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: plugins = %v, want %v", name, got, want)
		}
		t.Logf("primary rewritten (%s) → bgplb re-chained in %v", name, took.Round(time.Millisecond))
	}
}

// TestRunResyncCatchesWhatEventsMiss: the conf dir does not exist when the loop starts
// (nothing to watch); the periodic resync chains once the primary CNI creates it.
func TestRunResyncCatchesWhatEventsMiss(t *testing.T) {
	confDir, binDir := filepath.Join(t.TempDir(), "net.d"), t.TempDir()
	startLoop(t, &Loop{ConfDir: confDir, BinDir: binDir, PluginBinary: pluginSource(t), Entry: testEntry,
		Enabled: true, Resync: 200 * time.Millisecond})
	time.Sleep(300 * time.Millisecond)
	if err := os.Mkdir(confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(confDir, "10-k8s.conflist"), primaryConflist, 0o644)
	start := time.Now()
	poll.Eventually(t, 5*time.Second, tick, "chained after the conf dir appeared", func() bool { return chained(confDir) })
	took := time.Since(start)
	t.Logf("conf dir created → chained in %v", took.Round(time.Millisecond))
}

// TestRunDisabledNeverChainsAndUnchains: with the datapath off the loop unchains what an
// earlier (enabled) run chained, byte for byte, and never chains a new primary.
func TestRunDisabledNeverChainsAndUnchains(t *testing.T) {
	confDir, binDir := t.TempDir(), t.TempDir()
	primary := filepath.Join(confDir, "10-k8s.conflist")
	writeFile(t, primary, primaryConflist, 0o644)
	before := snapshot(t, confDir)
	if _, err := Chain(confDir, testEntry); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	passes := 0
	startLoop(t, &Loop{ConfDir: confDir, BinDir: binDir, PluginBinary: pluginSource(t), Entry: testEntry,
		Enabled: false, Resync: 100 * time.Millisecond, OnSync: func(Result, error) { mu.Lock(); passes++; mu.Unlock() }})
	poll.Eventually(t, 5*time.Second, tick, "unchained", func() bool { return !chained(confDir) })
	poll.Eventually(t, 5*time.Second, tick, "a later pass", func() bool { mu.Lock(); defer mu.Unlock(); return passes >= 2 })
	if after := snapshot(t, confDir); !reflect.DeepEqual(before, after) {
		t.Fatalf("conf dir differs from before chaining:\nbefore %q\nafter  %q", before, after)
	}
	// A new primary: events and several resyncs later, still not chained.
	writeFile(t, filepath.Join(confDir, "05-new.conflist"), primaryConflist, 0o644)
	mu.Lock()
	seen := passes
	mu.Unlock()
	poll.Eventually(t, 5*time.Second, tick, "three more passes", func() bool { mu.Lock(); defer mu.Unlock(); return passes >= seen+3 })
	if chained(confDir) {
		t.Fatal("the disabled loop chained the new primary")
	}
	if PluginInstalled(binDir) {
		t.Fatal("the disabled loop installed the plugin")
	}
}

// TestRunDoesNotChainWithoutThePlugin: a chained plugin that is missing fails every ADD.
func TestRunDoesNotChainWithoutThePlugin(t *testing.T) {
	confDir, binDir := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(confDir, "10-k8s.conflist"), primaryConflist, 0o644)
	errc := make(chan error, 10)
	startLoop(t, &Loop{ConfDir: confDir, BinDir: binDir, PluginBinary: filepath.Join(t.TempDir(), "missing"), Entry: testEntry,
		Enabled: true, Resync: time.Hour, OnSync: func(_ Result, err error) { errc <- err }})
	select {
	case err := <-errc:
		if !errors.Is(err, ErrPluginMissing) {
			t.Fatalf("first pass: err = %v, want ErrPluginMissing", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no pass")
	}
	if chained(confDir) {
		t.Fatal("chained without the plugin binary")
	}
}

// TestUninstall: conflist byte-identical to before install, no binary, no pins (real
// pinned maps on bpffs).
func TestUninstall(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("pinning needs root")
	}
	confDir, binDir := t.TempDir(), t.TempDir()
	pinRoot := filepath.Join("/sys/fs/bpf", fmt.Sprintf("cnichain-test-%d", os.Getpid()))
	if err := os.MkdirAll(pinRoot, 0o700); err != nil {
		t.Skipf("no bpffs at /sys/fs/bpf: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(pinRoot) })
	pinDir := filepath.Join(pinRoot, "bgplb")
	if err := os.MkdirAll(pinDir, 0o700); err != nil {
		t.Fatal(err)
	}
	maps, err := bpf.OpenMaps(pinDir)
	if err != nil {
		t.Fatalf("pin the datapath maps: %v", err)
	}
	maps.Close()
	pins, _ := os.ReadDir(pinDir)
	if len(pins) == 0 {
		t.Fatal("no pins were created")
	}

	primary := filepath.Join(confDir, "10-k8s.conflist")
	writeFile(t, primary, primaryConflist, 0o644)
	writeFile(t, filepath.Join(confDir, "99-other.conf"), `{"cniVersion":"1.0.0","name":"o","type":"bridge"}`, 0o644)
	beforeConf, beforeBin := snapshot(t, confDir), snapshot(t, binDir)
	l := &Loop{ConfDir: confDir, BinDir: binDir, PluginBinary: pluginSource(t), Entry: testEntry, Enabled: true}
	if _, err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if !chained(confDir) || !PluginInstalled(binDir) {
		t.Fatal("not installed")
	}

	if err := Uninstall(confDir, binDir, pinDir); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, confDir); !reflect.DeepEqual(beforeConf, after) {
		t.Fatalf("conf dir differs from before install:\nbefore %q\nafter  %q", beforeConf, after)
	}
	if after := snapshot(t, binDir); !reflect.DeepEqual(beforeBin, after) {
		t.Fatalf("bin dir after uninstall: %v", after)
	}
	if _, err := os.Stat(pinDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pin dir after uninstall: %v", err)
	}
	if err := Uninstall(confDir, binDir, pinDir); err != nil {
		t.Fatalf("second Uninstall: %v", err)
	}
	// The pin dir check: never an ordinary directory, never the bpffs mount itself.
	if err := RemovePins(t.TempDir()); !errors.Is(err, ErrNotBPFFS) {
		t.Fatalf("RemovePins(tmpdir) = %v, want ErrNotBPFFS", err)
	}
	if err := RemovePins("/sys/fs/bpf"); err == nil {
		t.Fatal("RemovePins accepted the bpffs mount")
	}
}
