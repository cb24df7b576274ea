package kubelet

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// podRecord is what the kubelet remembers about one pod across restarts. It is
// written before any kernel resource is made, so cleanup can always find them.
type podRecord struct {
	UID         types.UID    `json:"uid"`
	Namespace   string       `json:"namespace"`
	Name        string       `json:"name"`
	ContainerID string       `json:"containerID"`
	Netns       string       `json:"netns,omitempty"` // empty for hostNetwork pods
	IPs         []netip.Addr `json:"ips,omitempty"`   // from CNI ADD; empty until it succeeded
	// StartTime is when the kubelet first acted on the pod (status.startTime).
	StartTime time.Time `json:"startTime"`
	// ProcessStarted is when the current podserver was started.
	ProcessStarted time.Time `json:"processStarted,omitzero"`
	RestartCount   int32     `json:"restartCount"`
	// TerminationStarted is when the process got SIGTERM for a graceful deletion.
	TerminationStarted time.Time `json:"terminationStarted,omitzero"`
}

// attachment returns the CNI identity of the record's pod.
func (r podRecord) attachment() podAttachment {
	return podAttachment{
		ContainerID: r.ContainerID,
		NetnsPath:   netnsPath(r.Netns),
		Namespace:   r.Namespace,
		Name:        r.Name,
		UID:         string(r.UID),
	}
}

// containerIDFor derives the CNI container ID (the "sandbox ID") from a pod UID:
// the UID's hex digits, like the 32+ hex IDs real runtimes use.
func containerIDFor(uid types.UID) string {
	return strings.ReplaceAll(strings.ToLower(string(uid)), "-", "")
}

// netnsNameFor is the pod namespace name: <prefix>-pod-<node>-<first 12 hex of the
// UID>, where the prefix is the lab's ($BGPLB_LAB_PREFIX, default bgplb).
func netnsNameFor(node string, uid types.UID) string {
	id := containerIDFor(uid)
	if len(id) > 12 {
		id = id[:12]
	}
	prefix := os.Getenv("BGPLB_LAB_PREFIX")
	if prefix == "" {
		prefix = "bgplb"
	}
	return prefix + "-pod-" + node + "-" + id
}

// stateStore keeps one record, one PID file and one log per pod in Dir:
// <uid>.json, <uid>.pid (a process the lab must kill on teardown), <uid>.log.
type stateStore struct {
	Dir string
}

func (s stateStore) recordPath(uid types.UID) string {
	return filepath.Join(s.Dir, string(uid)+".json")
}
func (s stateStore) pidPath(uid types.UID) string { return filepath.Join(s.Dir, string(uid)+".pid") }
func (s stateStore) logPath(uid types.UID) string { return filepath.Join(s.Dir, string(uid)+".log") }

// writeAtomic writes data to path via a temporary file and rename.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("create temporary file for %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename %s: %w", path, err)
	}
	return nil
}

// put stores the record atomically.
func (s stateStore) put(r podRecord) error {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return fmt.Errorf("create state directory %s: %w", s.Dir, err)
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode pod record %s: %w", r.UID, err)
	}
	return writeAtomic(s.recordPath(r.UID), append(data, '\n'))
}

// list returns every stored record; unreadable records are reported in the error
// but do not hide the others.
func (s stateStore) list() ([]podRecord, error) {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state directory %s: %w", s.Dir, err)
	}
	var recs []podRecord
	var errs []error
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(s.Dir, e.Name()))
		if err != nil {
			errs = append(errs, fmt.Errorf("read pod record %s: %w", e.Name(), err))
			continue
		}
		var r podRecord
		if err := json.Unmarshal(data, &r); err != nil || r.UID == "" {
			errs = append(errs, fmt.Errorf("decode pod record %s: %v", e.Name(), err))
			continue
		}
		recs = append(recs, r)
	}
	return recs, errors.Join(errs...)
}

// writePID records the podserver's PID and executable, in the lab's PID file
// format: "<pid>\n<absolute executable>\n".
func (s stateStore) writePID(uid types.UID, pid int, exe string) error {
	return writeAtomic(s.pidPath(uid), []byte(strconv.Itoa(pid)+"\n"+exe+"\n"))
}

// readPID returns the recorded PID, 0 when there is none.
func (s stateStore) readPID(uid types.UID) (int, error) {
	data, err := os.ReadFile(s.pidPath(uid))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read PID file: %w", err)
	}
	first, _, _ := strings.Cut(string(data), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("parse PID file %s: %q", s.pidPath(uid), data)
	}
	return pid, nil
}

// removePID deletes the PID file; a missing one is fine.
func (s stateStore) removePID(uid types.UID) error {
	if err := os.Remove(s.pidPath(uid)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove PID file: %w", err)
	}
	return nil
}

// remove deletes everything stored for the pod (record last).
func (s stateStore) remove(uid types.UID) error {
	var errs []error
	for _, p := range []string{s.pidPath(uid), s.logPath(uid), s.recordPath(uid)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}
