package cnichain

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"k8s.io/klog/v2"
)

// Default timings of Loop.
const (
	DefaultResync   = 10 * time.Second
	DefaultDebounce = 100 * time.Millisecond
)

// Loop keeps bgplb chained (or, disabled, unchained) in a conf dir.
type Loop struct {
	ConfDir string
	BinDir  string
	// PluginBinary is the plugin to install into BinDir; empty: it must be there already.
	PluginBinary string
	// Entry is bgplb's conflist entry ("type" is set to bgplb).
	Entry map[string]any
	// Enabled chains; false never chains and unchains what is chained.
	Enabled bool
	// Resync is the period of a full pass besides the conf dir's events (default 10 s).
	Resync time.Duration
	// Debounce is how long a burst of events is collected before a pass (default 100 ms).
	Debounce time.Duration
	// OnSync, when set, is called after every pass with its outcome.
	OnSync func(Result, error)

	installed bool
}

// ErrPluginMissing means the plugin binary is not in the bin dir; Sync does not chain then.
var ErrPluginMissing = errors.New("bgplb CNI plugin binary missing")

// Sync makes one pass: enabled, it installs the plugin (the first time, and whenever the
// binary is gone) and chains; disabled, it unchains.
func (l *Loop) Sync() (Result, error) {
	if !l.Enabled {
		return Unchain(l.ConfDir)
	}
	if l.PluginBinary != "" && (!l.installed || !PluginInstalled(l.BinDir)) {
		if _, err := InstallPlugin(l.PluginBinary, l.BinDir); err != nil {
			if !PluginInstalled(l.BinDir) {
				return Result{}, fmt.Errorf("%w from %s, not chaining: %w", ErrPluginMissing, l.BinDir, err)
			}
			// An older plugin stays in place; retry on the next resync.
			res, cerr := Chain(l.ConfDir, l.Entry)
			return res, errors.Join(err, cerr)
		}
		l.installed = true
	}
	if !PluginInstalled(l.BinDir) {
		return Result{}, fmt.Errorf("%w from %s, not chaining", ErrPluginMissing, l.BinDir)
	}
	return Chain(l.ConfDir, l.Entry)
}

// Run calls Sync at once, after every change in the conf dir (debounced) and every Resync
// until ctx is done. Errors are logged and retried; Run returns nil when ctx ends.
func (l *Loop) Run(ctx context.Context) error {
	logger := klog.FromContext(ctx).WithValues("confDir", l.ConfDir)
	resync, debounce := l.Resync, l.Debounce
	if resync <= 0 {
		resync = DefaultResync
	}
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("create fsnotify watcher: %w", err)
	}
	defer w.Close()
	watching := false
	watch := func() {
		if watching {
			return
		}
		if err := w.Add(l.ConfDir); err != nil {
			logger.V(2).Info("cannot watch the CNI conf dir yet, relying on the resync", "err", err)
			return
		}
		watching = true
	}

	var lastErr string
	pass := func() {
		watch()
		res, err := l.Sync()
		switch {
		case err != nil:
			if err.Error() != lastErr {
				logger.Info("CNI chaining pass failed, will retry", "enabled", l.Enabled, "err", err)
			}
			lastErr = err.Error()
		case res.Changed:
			lastErr = ""
			logger.Info("CNI configuration updated", "enabled", l.Enabled, "file", res.Path)
		default:
			lastErr = ""
		}
		if l.OnSync != nil {
			l.OnSync(res, err)
		}
	}

	ticker := time.NewTicker(resync)
	defer ticker.Stop()
	timer := time.NewTimer(0) // the first pass at once
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			pass()
		case <-timer.C:
			pass()
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ours(ev.Name) {
				continue
			}
			if ev.Has(fsnotify.Remove) && filepath.Clean(ev.Name) == filepath.Clean(l.ConfDir) {
				watching = false // the dir itself is gone: re-add on the next pass
			}
			timer.Reset(debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			logger.Info("fsnotify error on the CNI conf dir", "err", err)
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				timer.Reset(debounce)
			}
		}
	}
}

// ours reports whether an event is about one of our temp files (renamed into place
// right after, which is an event of its own).
func ours(name string) bool {
	return strings.HasPrefix(filepath.Base(name), ".bgplb-tmp-")
}
