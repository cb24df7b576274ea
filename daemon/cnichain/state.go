package cnichain

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// stateDirName is the hidden directory in the conf dir that holds Chain's state. libcni
// and the runtimes skip directories when they list configurations.
const stateDirName = ".bgplb"

// state is what Chain changed, so that Unchain can restore it byte for byte.
type state struct {
	// File is the base name of the conflist Chain wrote last.
	File string `json:"file"`
	// Written is the hex SHA-256 of the bytes Chain wrote to File.
	Written string `json:"written"`
	// HaveOriginal says Original holds the primary's bytes from before Chain changed them
	// (false: the file had a bgplb entry already; Unchain can only remove ours).
	HaveOriginal bool `json:"haveOriginal"`
	// OriginalFile is the base name of that file (a converted .conf differs from File).
	OriginalFile string `json:"originalFile,omitempty"`
	// Original are its bytes (base64 in JSON).
	Original []byte `json:"original,omitempty"`
	// OriginalMode are its permission bits.
	OriginalMode uint32 `json:"originalMode,omitempty"`
}

func stateDir(confDir string) string { return filepath.Join(confDir, stateDirName) }

func statePath(confDir string) string { return filepath.Join(stateDir(confDir), "chain.json") }

// loadState returns nil, nil when there is no state.
func loadState(confDir string) (*state, error) {
	data, err := os.ReadFile(statePath(confDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read chaining state: %w", err)
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("decode chaining state %s: %w", statePath(confDir), err)
	}
	if filepath.Base(st.File) != st.File || (st.HaveOriginal && filepath.Base(st.OriginalFile) != st.OriginalFile) {
		return nil, fmt.Errorf("chaining state %s names a file outside the conf dir", statePath(confDir))
	}
	return &st, nil
}

func saveState(confDir string, st *state) error {
	if err := os.MkdirAll(stateDir(confDir), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", stateDir(confDir), err)
	}
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode chaining state: %w", err)
	}
	return writeAtomic(statePath(confDir), data, 0o600)
}

// lockDir takes an exclusive flock on confDir itself, so that two writers (an install-cni
// init container and a terminating daemon's loop during a rolling update) never
// interleave their read-modify-write of the conflist and the state. The returned func
// releases it.
func lockDir(confDir string) (func(), error) {
	f, err := os.Open(confDir)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", confDir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", confDir, err)
	}
	return func() { f.Close() }, nil // closing the last fd releases the lock
}
