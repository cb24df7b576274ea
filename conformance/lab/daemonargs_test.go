package lab

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestDaemonArgsCNIChaining: with the plugin in BinDir the lab's bgplbd runs the chaining
// loop on the node's own CNI dirs, with the same entry the lab writes; without the plugin
// (or with NoCNIPlugin) it does not.
func TestDaemonArgsCNIChaining(t *testing.T) {
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "bgplb"), []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	n := makeNode("/run/x", 1, false)
	value := func(args []string, flag string) (string, bool) {
		i := slices.Index(args, flag)
		if i < 0 || i+1 >= len(args) {
			return "", false
		}
		return args[i+1], true
	}
	l := &Lab{Dir: "/run/x", Opts: Options{BinDir: bin, DaemonExtraArgs: []string{"--datapath=false"}}}
	args := l.daemonArgs(n)
	for flag, want := range map[string]string{
		"--cni-conf-dir":      n.CNIConfDir(),
		"--cni-bin-dir":       n.CNIBinDir(),
		"--cni-plugin-binary": filepath.Join(bin, "bgplb"),
	} {
		if got, ok := value(args, flag); !ok || got != want {
			t.Errorf("%s = %q, want %q (args %v)", flag, got, want, args)
		}
	}
	conf, _ := value(args, "--cni-plugin-conf")
	var extra map[string]string
	if err := json.Unmarshal([]byte(conf), &extra); err != nil || extra["logFile"] != l.cniLogFile(n) {
		t.Errorf("--cni-plugin-conf = %q (%v)", conf, err)
	}
	if args[len(args)-1] != "--datapath=false" {
		t.Errorf("extra args not last: %v", args)
	}
	for name, l := range map[string]*Lab{
		"NoCNIPlugin":      {Dir: "/run/x", Opts: Options{BinDir: bin, NoCNIPlugin: true}},
		"no plugin binary": {Dir: "/run/x", Opts: Options{BinDir: t.TempDir()}},
	} {
		if args := l.daemonArgs(n); slices.Contains(args, "--cni-conf-dir") {
			t.Errorf("%s: daemon args chain: %v", name, args)
		}
	}
}
