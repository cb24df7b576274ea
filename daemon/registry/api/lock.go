package api

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// lockName is the flock file in Dir. It does not end in ".json", so List ignores it.
const lockName = ".lock"

// Lock takes an flock on the store: shared for a CNI ADD or DEL (each touches only its own
// attachment, so they run in parallel), exclusive for whoever needs a consistent view of
// all attachments (CNI GC, the daemon's Rebuild): while it is held, no ADD or DEL is half
// done. Dir is created when missing. The returned function releases the lock. Lock blocks;
// the lock is released automatically if the process dies.
func (s RecordStore) Lock(exclusive bool) (unlock func(), err error) {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create record dir %s: %w", s.Dir, err)
	}
	return LockFile(filepath.Join(s.Dir, lockName), exclusive)
}

// LockFile flocks the file p (created when missing), shared or exclusive.
func LockFile(p string, exclusive bool) (unlock func(), err error) {
	f, err := os.OpenFile(p, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file %s: %w", p, err)
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		_ = f.Close() // the flock error is the one to report
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return func() { _ = f.Close() }, nil // closing the file releases the flock
}
