package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// RecordStore keeps one JSON file per attachment in Dir. The file name is derived from the
// attachment key, so different attachments never share a file and concurrent writers for
// different attachments need no lock. Writes are atomic: a reader sees either the old or the
// new record, never a partial one.
type RecordStore struct{ Dir string }

const (
	recordSuffix = ".json"
	tmpPrefix    = ".tmp-"
)

// recordName maps (containerID, ifName) to a file name. QueryEscape escapes '/', '@' and
// '%', so the mapping is injective and the name never leaves Dir.
func recordName(containerID, ifName string) string {
	return url.QueryEscape(containerID) + "@" + url.QueryEscape(ifName) + recordSuffix
}

func (s RecordStore) path(containerID, ifName string) string {
	return filepath.Join(s.Dir, recordName(containerID, ifName))
}

// Put writes (or replaces) the record of e atomically, creating Dir when missing.
func (s RecordStore) Put(e Endpoint) error {
	if err := e.Validate(); err != nil {
		return fmt.Errorf("put record: %w", err)
	}
	data, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return fmt.Errorf("encode record %s: %w", e.Key(), err)
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("create record dir %s: %w", s.Dir, err)
	}
	f, err := os.CreateTemp(s.Dir, tmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("create temporary record in %s: %w", s.Dir, err)
	}
	tmp := f.Name()
	committed := false
	defer func() {
		if !committed {
			_ = os.Remove(tmp) // best effort: the write already failed
		}
	}()
	if _, err := f.Write(append(data, '\n')); err != nil {
		_ = f.Close() // the write error is the one worth reporting
		return fmt.Errorf("write record %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close() // the sync error is the one worth reporting
		return fmt.Errorf("sync record %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close record %s: %w", tmp, err)
	}
	dst := s.path(e.ContainerID, e.IfName)
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("rename record to %s: %w", dst, err)
	}
	committed = true
	return syncDir(s.Dir)
}

// Get reads the record of (containerID, ifName); ok is false when there is none.
func (s RecordStore) Get(containerID, ifName string) (e Endpoint, ok bool, err error) {
	p := s.path(containerID, ifName)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Endpoint{}, false, nil
	}
	if err != nil {
		return Endpoint{}, false, fmt.Errorf("read record %s: %w", p, err)
	}
	if err := json.Unmarshal(data, &e); err != nil {
		return Endpoint{}, false, fmt.Errorf("decode record %s: %w", p, err)
	}
	return e, true, nil
}

// Delete removes the record of (containerID, ifName). Deleting a missing record (or a
// missing Dir) is not an error.
func (s RecordStore) Delete(containerID, ifName string) error {
	p := s.path(containerID, ifName)
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete record %s: %w", p, err)
	}
	if err := syncDir(s.Dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// List returns every record in Dir sorted by key. A missing Dir is an empty store. Files
// that cannot be decoded are skipped and reported in the joined error, together with the
// records that could be read, so one corrupt file does not hide the others.
func (s RecordStore) List() ([]Endpoint, error) {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list records in %s: %w", s.Dir, err)
	}
	var (
		eps  []Endpoint
		errs []error
	)
	for _, de := range entries {
		name := de.Name()
		if !de.Type().IsRegular() || strings.HasPrefix(name, tmpPrefix) || !strings.HasSuffix(name, recordSuffix) {
			continue
		}
		p := filepath.Join(s.Dir, name)
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted concurrently
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("read record %s: %w", p, err))
			continue
		}
		var e Endpoint
		if err := json.Unmarshal(data, &e); err != nil {
			errs = append(errs, fmt.Errorf("decode record %s: %w", p, err))
			continue
		}
		eps = append(eps, e)
	}
	sort.Slice(eps, func(i, j int) bool { return eps[i].Key() < eps[j].Key() })
	return eps, errors.Join(errs...)
}

// syncDir makes a rename or unlink in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open record dir %s: %w", dir, err)
	}
	defer func() { _ = d.Close() }() // read-only handle; Sync reported the error that matters
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync record dir %s: %w", dir, err)
	}
	return nil
}
