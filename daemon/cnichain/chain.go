package cnichain

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

// PluginType is the "type" of bgplb's conflist entry (the plugin binary's name).
const PluginType = "bgplb"

// Extensions are the configuration file extensions a runtime loads (containerd and CRI-O
// pass these to libcni.ConfFiles).
var Extensions = []string{".conf", ".conflist", ".json"}

// ErrNoConfig means the conf dir holds no CNI configuration yet (the primary CNI has not
// written it): there is nothing to chain into.
var ErrNoConfig = errors.New("no CNI configuration")

// Primary returns the path of the configuration file the runtime uses: the
// lexicographically first of Extensions in confDir. It returns ErrNoConfig when there
// is none.
func Primary(confDir string) (string, error) {
	files, err := libcni.ConfFiles(confDir, Extensions)
	if err != nil {
		return "", fmt.Errorf("list CNI configurations in %s: %w", confDir, err)
	}
	if len(files) == 0 {
		return "", fmt.Errorf("%w in %s: install the primary CNI first", ErrNoConfig, confDir)
	}
	sort.Strings(files)
	return files[0], nil
}

// Result says what Chain or Unchain did.
type Result struct {
	Path    string // the conflist chained (Chain) or the file restored or edited last (Unchain)
	Changed bool   // a file was written or removed
}

// Chain makes the primary configuration of confDir a conflist ending with entry (see the
// package contract). entry's "type" is set to PluginType.
func Chain(confDir string, entry map[string]any) (Result, error) {
	want, err := normalize(entry)
	if err != nil {
		return Result{}, err
	}
	unlock, err := lockDir(confDir)
	if errors.Is(err, os.ErrNotExist) {
		return Result{}, fmt.Errorf("%w: %s does not exist", ErrNoConfig, confDir)
	}
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	path, err := Primary(confDir)
	if err != nil {
		return Result{}, err
	}
	data, mode, err := readFile(path)
	if err != nil {
		return Result{}, err
	}
	target := path
	var top map[string]json.RawMessage
	var plugins []json.RawMessage
	if strings.HasSuffix(path, ".conflist") {
		if _, err := libcni.ConfListFromBytes(data); err != nil {
			return Result{}, fmt.Errorf("load %s: %w", path, err)
		}
		if top, plugins, err = splitConfList(data); err != nil {
			return Result{}, fmt.Errorf("parse %s: %w", path, err)
		}
	} else {
		// A single-plugin configuration: convert it as runtimes do when they load one
		// (containerd's go-cni with libcni.ConfListFromConf, deprecated in libcni since the
		// format is): name and cniVersion of the plugin, the plugin as the only element.
		conf, err := libcni.NetworkPluginConfFromBytes(data)
		if err != nil {
			return Result{}, fmt.Errorf("load %s: %w", path, err)
		}
		if conf.Network.Type == "" {
			return Result{}, fmt.Errorf("%s has no plugin type: a conflist needs the .conflist extension to be loaded as one", path)
		}
		name, _ := json.Marshal(conf.Network.Name)      // a string always encodes
		ver, _ := json.Marshal(conf.Network.CNIVersion) // a string always encodes
		top = map[string]json.RawMessage{"name": name, "cniVersion": ver}
		plugins = []json.RawMessage{conf.Bytes}
		if out, err := joinConfList(top, plugins); err != nil {
			return Result{}, fmt.Errorf("convert %s to a conflist: %w", path, err)
		} else if _, err := libcni.ConfListFromBytes(out); err != nil {
			return Result{}, fmt.Errorf("convert %s to a conflist: %w", path, err)
		}
		target = convertedName(path)
	}

	st, err := loadState(confDir)
	if err != nil {
		return Result{}, err
	}
	if target == path && chainedLast(plugins, want) {
		return Result{Path: path}, nil
	}
	if target != path {
		// Never overwrite a conflist that we did not write ourselves.
		if _, err := os.Stat(target); err == nil && (st == nil || st.File != filepath.Base(target)) {
			return Result{}, fmt.Errorf("convert %s: %s exists and was not written by bgplb", path, target)
		}
	}

	var kept []json.RawMessage
	ours := false
	for _, p := range plugins {
		if pluginType(p) == PluginType {
			ours = true
			continue
		}
		kept = append(kept, p)
	}
	wantRaw, err := json.Marshal(want)
	if err != nil {
		return Result{}, fmt.Errorf("encode the bgplb entry: %w", err)
	}
	out, err := joinConfList(top, append(kept, wantRaw))
	if err != nil {
		return Result{}, fmt.Errorf("encode %s: %w", target, err)
	}

	// The state: the primary's pristine bytes when this is the first change to them.
	next := &state{File: filepath.Base(target), Written: digest(out)}
	switch {
	case st != nil && st.File == filepath.Base(path) && st.Written == digest(data):
		// The file is still what we wrote: the pristine copy stays the same.
		next.Original, next.OriginalFile, next.OriginalMode, next.HaveOriginal = st.Original, st.OriginalFile, st.OriginalMode, st.HaveOriginal
	case !ours:
		next.Original, next.OriginalFile, next.OriginalMode, next.HaveOriginal = data, filepath.Base(path), uint32(mode), true
	default:
		// Someone else's file with a bgplb entry in it (an older installer, the primary
		// CNI keeping ours): the pristine bytes are unknown; Unchain removes our entry.
	}
	// State first: if we stop between the two writes, the next Chain sees a file that
	// is not what the state says and starts over from it.
	if err := saveState(confDir, next); err != nil {
		return Result{}, err
	}
	if err := writeAtomic(target, out, mode); err != nil {
		return Result{}, err
	}
	if target != path {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return Result{}, fmt.Errorf("remove %s after converting it to %s: %w", path, target, err)
		}
	}
	return Result{Path: target, Changed: true}, nil
}

// Unchain takes bgplb out of confDir (see the package contract): the primary's original
// bytes come back when the file is still what Chain wrote, otherwise every entry of type
// bgplb is removed from every conflist. It is idempotent.
func Unchain(confDir string) (Result, error) {
	unlock, err := lockDir(confDir)
	if errors.Is(err, os.ErrNotExist) {
		return Result{}, nil // no conf dir: nothing chained
	}
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	st, err := loadState(confDir)
	if err != nil {
		return Result{}, err
	}
	var res Result
	if st != nil && st.HaveOriginal {
		cur := filepath.Join(confDir, st.File)
		data, _, err := readFile(cur)
		switch {
		case err == nil && digest(data) == st.Written:
			orig := filepath.Join(confDir, st.OriginalFile)
			if err := writeAtomic(orig, st.Original, os.FileMode(st.OriginalMode)); err != nil {
				return Result{}, err
			}
			if orig != cur {
				if err := os.Remove(cur); err != nil {
					return Result{}, fmt.Errorf("remove %s: %w", cur, err)
				}
			}
			res = Result{Path: orig, Changed: true}
		case err != nil && !errors.Is(err, os.ErrNotExist):
			return Result{}, err
		}
	}
	files, err := libcni.ConfFiles(confDir, []string{".conflist"})
	if err != nil {
		return Result{}, fmt.Errorf("list CNI configurations in %s: %w", confDir, err)
	}
	sort.Strings(files)
	for _, f := range files {
		changed, err := removeEntries(f)
		if err != nil {
			return res, err
		}
		if changed {
			res = Result{Path: f, Changed: true}
		}
	}
	if err := os.RemoveAll(stateDir(confDir)); err != nil {
		return res, fmt.Errorf("remove %s: %w", stateDir(confDir), err)
	}
	return res, nil
}

// IsChained reports whether the primary configuration of confDir ends with a bgplb entry.
func IsChained(confDir string) (bool, error) {
	path, err := Primary(confDir)
	if err != nil {
		return false, err
	}
	list, err := libcni.ConfListFromFile(path)
	if err != nil {
		return false, nil //nolint:nilerr // a single-plugin .conf is not chained
	}
	n := len(list.Plugins)
	return n > 0 && list.Plugins[n-1].Network.Type == PluginType, nil
}

// removeEntries removes the plugins of type bgplb from the conflist at path.
func removeEntries(path string) (bool, error) {
	data, mode, err := readFile(path)
	if err != nil {
		return false, err
	}
	top, plugins, err := splitConfList(data)
	if err != nil {
		return false, nil //nolint:nilerr // not a conflist we can edit: nothing of ours in it
	}
	var kept []json.RawMessage
	for _, p := range plugins {
		if pluginType(p) != PluginType {
			kept = append(kept, p)
		}
	}
	if len(kept) == len(plugins) {
		return false, nil
	}
	out, err := joinConfList(top, kept)
	if err != nil {
		return false, fmt.Errorf("encode %s: %w", path, err)
	}
	return true, writeAtomic(path, out, mode)
}

// normalize returns entry with type bgplb, as the generic JSON values a decoder yields.
func normalize(entry map[string]any) (map[string]any, error) {
	m := map[string]any{}
	for k, v := range entry {
		m[k] = v
	}
	m["type"] = PluginType
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode the bgplb entry: %w", err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("decode the bgplb entry: %w", err)
	}
	return out, nil
}

// chainedLast reports whether the only bgplb entry of plugins is the last and equals want.
func chainedLast(plugins []json.RawMessage, want map[string]any) bool {
	n := len(plugins)
	if n == 0 {
		return false
	}
	for _, p := range plugins[:n-1] {
		if pluginType(p) == PluginType {
			return false
		}
	}
	var last map[string]any
	if err := json.Unmarshal(plugins[n-1], &last); err != nil {
		return false
	}
	return reflect.DeepEqual(last, want)
}

func pluginType(raw json.RawMessage) string {
	var p struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(raw, &p) // undecodable: no type, not ours
	return p.Type
}

// splitConfList decodes a conflist into its top-level fields and its plugins, keeping
// every field other than "plugins" as it was.
func splitConfList(data []byte) (map[string]json.RawMessage, []json.RawMessage, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, nil, err
	}
	raw, ok := top["plugins"]
	if !ok {
		return nil, nil, errors.New("no plugins list")
	}
	var plugins []json.RawMessage
	if err := json.Unmarshal(raw, &plugins); err != nil {
		return nil, nil, fmt.Errorf("decode plugins: %w", err)
	}
	return top, plugins, nil
}

func joinConfList(top map[string]json.RawMessage, plugins []json.RawMessage) ([]byte, error) {
	out := make(map[string]json.RawMessage, len(top))
	for k, v := range top {
		out[k] = v
	}
	if plugins == nil {
		plugins = []json.RawMessage{}
	}
	p, err := json.Marshal(plugins)
	if err != nil {
		return nil, err
	}
	out["plugins"] = p
	b, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// convertedName is the conflist a single-plugin file becomes: 10-x.conf → 10-x.conflist
// (sorts right after it), 10-x.json → 10-x.conflist (sorts before it).
func convertedName(path string) string {
	return strings.TrimSuffix(path, filepath.Ext(path)) + ".conflist"
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func readFile(path string) ([]byte, os.FileMode, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, 0, fmt.Errorf("stat %s: %w", path, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", path, err)
	}
	return data, fi.Mode().Perm(), nil
}

// writeAtomic writes data to path through a temp file in the same directory and a rename.
// The temp name has no configuration extension, so a runtime listing the directory in
// between never loads it.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	if mode == 0 {
		mode = 0o644
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".bgplb-tmp-*")
	if err != nil {
		return fmt.Errorf("create temp file for %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}
