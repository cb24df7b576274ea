package status

import (
	"maps"
	"slices"
	"sync"
)

// Errors keeps the latest error of each key (a Service, the peers) for the node's
// BGPNodeState: a key's error goes when its next sync succeeds. Safe for concurrent use.
type Errors struct {
	mu sync.Mutex
	m  map[string]string // key -> "key: error"
}

// Record sets (err != nil) or clears the error of key and reports whether that changed
// anything.
func (e *Errors) Record(key string, err error) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	old, had := e.m[key]
	if err == nil {
		delete(e.m, key)
		return had
	}
	if e.m == nil {
		e.m = map[string]string{}
	}
	msg := key + ": " + err.Error()
	e.m[key] = msg
	return !had || old != msg
}

// List returns the errors sorted by key.
func (e *Errors) List() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, k := range slices.Sorted(maps.Keys(e.m)) {
		out = append(out, e.m[k])
	}
	return out
}
