package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"k8s.io/klog/v2"

	"github.com/bgplb/bgplb/daemon/bgp"
)

// A daemon restarted while the API server is unreachable cannot compute what to announce:
// it announces what its predecessor announced, saved in the state file, until the API
// server answers (docs/design.md decision 11; docs/security.md). The file holds the
// speaker's global settings, neighbours (with MD5 passwords: mode 0600, root's), allowed
// prefixes and announced paths; it is written by the running daemon after its first full
// sync pass and after every change (debounced), with a temp file and a rename.

// stateFileVersion is persistedState.Version; a file of another version is ignored.
const stateFileVersion = 1

// saveDebounce is how long the saver waits after a change before writing, so a burst of
// changes is one write.
const saveDebounce = time.Second

// persistedState is the content of the state file.
type persistedState struct {
	Version int              `json:"version"`
	Saved   time.Time        `json:"saved"`
	Global  bgp.Global       `json:"global"`
	Peers   []bgp.PeerConfig `json:"peers"`
	Allowed []netip.Prefix   `json:"allowed"`
	Paths   []bgp.Path       `json:"paths"`
}

// loadState reads the state file at path.
func loadState(path string) (persistedState, error) {
	var st persistedState
	data, err := os.ReadFile(path)
	if err != nil {
		return st, fmt.Errorf("read state file: %w", err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("decode state file %s: %w", path, err)
	}
	if st.Version != stateFileVersion {
		return st, fmt.Errorf("state file %s has version %d, want %d", path, st.Version, stateFileVersion)
	}
	return st, nil
}

// writeState writes st to path atomically with mode 0600.
func writeState(path string, st persistedState) error {
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".bgplbd-state-*")
	if err != nil {
		return fmt.Errorf("create state file: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // gone after the rename
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close() // the write error is the one to report
		return fmt.Errorf("write state file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close state file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename state file: %w", err)
	}
	return nil
}

// recordingSpeaker is the node's speaker, remembering the configuration it was given so
// the saver can persist it, and which prefixes were announced or withdrawn since
// trackPrefixes (to find what a restart from the state file announced that nobody
// claims any more).
type recordingSpeaker struct {
	bgp.Speaker

	mu      sync.Mutex
	global  bgp.Global
	started bool
	peers   []bgp.PeerConfig
	allowed []netip.Prefix
	touched map[netip.Prefix]bool // nil: not tracking
	changed chan struct{}         // cap 1: a change since the last save
}

func newRecordingSpeaker(s bgp.Speaker) *recordingSpeaker {
	return &recordingSpeaker{Speaker: s, changed: make(chan struct{}, 1)}
}

func (r *recordingSpeaker) signal() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// Start implements bgp.Speaker.
func (r *recordingSpeaker) Start(ctx context.Context, g bgp.Global) error {
	if err := r.Speaker.Start(ctx, g); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	g.Restarting = false
	r.global, r.started = g, true
	return nil
}

// SetPeers implements bgp.Speaker.
func (r *recordingSpeaker) SetPeers(ctx context.Context, peers []bgp.PeerConfig) error {
	err := r.Speaker.SetPeers(ctx, peers)
	if err == nil {
		r.mu.Lock()
		r.peers = slices.Clone(peers)
		r.mu.Unlock()
		r.signal()
	}
	return err
}

// SetAllowedPrefixes implements bgp.Speaker.
func (r *recordingSpeaker) SetAllowedPrefixes(ctx context.Context, allowed []netip.Prefix) error {
	err := r.Speaker.SetAllowedPrefixes(ctx, allowed)
	if err == nil {
		r.mu.Lock()
		r.allowed = slices.Clone(allowed)
		r.mu.Unlock()
		r.signal()
	}
	return err
}

// Announce implements bgp.Speaker.
func (r *recordingSpeaker) Announce(ctx context.Context, p bgp.Path) error {
	err := r.Speaker.Announce(ctx, p)
	r.touch(p.Prefix, err)
	return err
}

// Withdraw implements bgp.Speaker.
func (r *recordingSpeaker) Withdraw(ctx context.Context, prefix netip.Prefix) error {
	err := r.Speaker.Withdraw(ctx, prefix)
	r.touch(prefix, err)
	return err
}

func (r *recordingSpeaker) touch(prefix netip.Prefix, err error) {
	if err != nil {
		return
	}
	r.mu.Lock()
	if r.touched != nil {
		r.touched[prefix] = true
	}
	r.mu.Unlock()
	r.signal()
}

// trackPrefixes starts recording which prefixes are announced or withdrawn.
func (r *recordingSpeaker) trackPrefixes() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.touched = map[netip.Prefix]bool{}
}

// untouched returns the announced prefixes nobody announced or withdrew since
// trackPrefixes, and stops tracking.
func (r *recordingSpeaker) untouched() []netip.Prefix {
	r.mu.Lock()
	touched := r.touched
	r.touched = nil
	r.mu.Unlock()
	var out []netip.Prefix
	for _, p := range r.Speaker.Announced() {
		if !touched[p.Prefix] {
			out = append(out, p.Prefix)
		}
	}
	return out
}

// snapshot returns what the speaker runs now.
func (r *recordingSpeaker) snapshot() (persistedState, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.started {
		return persistedState{}, false
	}
	return persistedState{Version: stateFileVersion, Saved: time.Now().UTC(), Global: r.global,
		Peers: slices.Clone(r.peers), Allowed: slices.Clone(r.allowed), Paths: r.Speaker.Announced()}, true
}

// runSaver writes the speaker's state to path now and after every change, until ctx is
// done. Errors are logged; the next change retries.
func (r *recordingSpeaker) runSaver(ctx context.Context, path string) {
	logger := klog.FromContext(ctx).WithValues("stateFile", path)
	r.signal()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.changed:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(saveDebounce):
		}
		st, ok := r.snapshot()
		if !ok {
			continue
		}
		if err := writeState(path, st); err != nil {
			logger.Info("saving the announced state failed", "err", err)
			continue
		}
		logger.V(4).Info("announced state saved", "paths", len(st.Paths), "peers", len(st.Peers))
	}
}

// startFromState starts the speaker with the state file's content: global settings
// (marked as a graceful restart), allowed prefixes, paths, then the peers, so a
// graceful-restart peer gets the whole table before our End-of-RIB.
func startFromState(ctx context.Context, sp *recordingSpeaker, st persistedState) error {
	g := st.Global
	g.Restarting = true
	if err := sp.Start(ctx, g); err != nil {
		return fmt.Errorf("start bgp speaker from the state file: %w", err)
	}
	if err := sp.SetAllowedPrefixes(ctx, st.Allowed); err != nil {
		return fmt.Errorf("set allowed prefixes from the state file: %w", err)
	}
	var errs []error
	for _, p := range st.Paths {
		if err := sp.Announce(ctx, p); err != nil {
			errs = append(errs, fmt.Errorf("announce %s from the state file: %w", p.Prefix, err))
		}
	}
	if err := sp.SetPeers(ctx, st.Peers); err != nil {
		errs = append(errs, fmt.Errorf("set peers from the state file: %w", err))
	}
	return errors.Join(errs...)
}

// isStarted reports whether Start succeeded.
func (r *recordingSpeaker) isStarted() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.started
}
