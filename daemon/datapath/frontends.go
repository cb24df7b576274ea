//go:build linux

package datapath

import "github.com/bgplb/bgplb/bpf"

// FrontendRef is one programmed frontend and the Service owning it.
type FrontendRef struct {
	Service string // namespace/name
	Key     bpf.ServiceKey
	ID      uint32 // service id in the maps (lb_svc_stats index)
}

// Frontends lists the frontends the manager programmed, for the per-Service datapath
// counters (daemon/metrics).
func (m *Manager) Frontends() []FrontendRef {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []FrontendRef
	for key, s := range m.services {
		for _, fe := range s.frontends {
			out = append(out, FrontendRef{Service: key, Key: fe.key, ID: fe.id})
		}
	}
	return out
}
