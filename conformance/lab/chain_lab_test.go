//go:build lab

package lab_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bgplb/bgplb/conformance/lab"
	"github.com/bgplb/bgplb/daemon/cnichain"
	"github.com/bgplb/bgplb/internal/poll"
)

// TestLabDaemonKeepsPluginChained: on a lab node, bgplbd's chaining loop re-chains the
// plugin within 5 s when the node's conflist is rewritten without it (as a primary CNI
// does), and a daemon restart leaves the chaining in place (not a DaemonSet removal).
func TestLabDaemonKeepsPluginChained(t *testing.T) {
	dir := labDir(t)
	opts := labOptions(t, dir)
	opts.NoDaemon, opts.Nodes = false, 1
	for _, b := range []string{"bgplbd", "bgplb"} {
		if _, err := os.Stat(filepath.Join(opts.BinDir, b)); err != nil {
			t.Fatalf("missing binary: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l, err := lab.Up(ctx, opts)
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	t.Cleanup(func() {
		if err := lab.Down(dir); err != nil {
			t.Errorf("down: %v", err)
		}
	})
	n := l.Nodes[0]
	conflist := filepath.Join(n.CNIConfDir(), lab.CNIConflistFile)
	daemonLog := filepath.Join(dir, "logs", n.Name+"-bgplbd.log")
	poll.Eventually(t, 60*time.Second, every, "bgplbd runs the chaining loop", func() error {
		b, err := os.ReadFile(daemonLog)
		if err != nil || !strings.Contains(string(b), "CNI chaining loop started") {
			return os.ErrNotExist
		}
		return nil
	})
	if ok, err := cnichain.IsChained(n.CNIConfDir()); !ok || err != nil {
		t.Fatalf("not chained after up: %v %v", ok, err)
	}

	// The primary CNI rewrites its conflist without bgplb (temp file + rename).
	data, err := os.ReadFile(conflist)
	if err != nil {
		t.Fatal(err)
	}
	var conf map[string]any
	if err := json.Unmarshal(data, &conf); err != nil {
		t.Fatal(err)
	}
	conf["plugins"] = conf["plugins"].([]any)[:1]
	out, _ := json.MarshalIndent(conf, "", "  ")
	tmp := filepath.Join(n.CNIConfDir(), ".primary-tmp")
	if err := os.WriteFile(tmp, out, 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := os.Rename(tmp, conflist); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 5*time.Second, 10*time.Millisecond, "re-chained by bgplbd", func() bool {
		ok, _ := cnichain.IsChained(n.CNIConfDir())
		return ok
	})
	t.Logf("conflist rewritten without bgplb → re-chained by bgplbd in %v", time.Since(start).Round(time.Millisecond))

	// A restart is not a removal: the plugin stays chained and installed.
	if err := l.SignalDaemon(ctx, n.Name, syscall.SIGTERM, false); err != nil {
		t.Fatal(err)
	}
	if ok, err := cnichain.IsChained(n.CNIConfDir()); !ok || err != nil {
		t.Fatalf("not chained after bgplbd stopped: %v %v", ok, err)
	}
	if !cnichain.PluginInstalled(n.CNIBinDir()) {
		t.Fatal("plugin binary gone after bgplbd stopped")
	}

	// bgplbd started again with the datapath off unchains: the conflist is again what
	// the "primary" wrote, byte for byte.
	l.Opts.DaemonExtraArgs = append(l.Opts.DaemonExtraArgs, "--datapath=false")
	start = time.Now()
	if err := l.StartDaemon(ctx, n.Name); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 30*time.Second, every, "unchained by bgplbd --datapath=false", func() error {
		b, err := os.ReadFile(conflist)
		if err != nil || string(b) != string(out) {
			return os.ErrExist
		}
		return nil
	})
	t.Logf("bgplbd --datapath=false started → conflist restored byte for byte in %v", time.Since(start).Round(time.Millisecond))
	if err := l.SignalDaemon(ctx, n.Name, syscall.SIGTERM, false); err != nil {
		t.Fatal(err)
	}
}
