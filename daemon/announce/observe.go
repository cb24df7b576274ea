package announce

import "net/netip"

// AnnouncedPrefixes returns the prefixes this node currently announces for Service key
// (nil: none), for the announce/withdraw events and counters of daemon/app.
func (a *Announcer) AnnouncedPrefixes(key string) []netip.Prefix {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.services[key]
	if s == nil || len(s.paths) == 0 {
		return nil
	}
	out := make([]netip.Prefix, 0, len(s.paths))
	for _, p := range s.paths {
		out = append(out, p.Prefix)
	}
	return out
}

// ServiceReason returns the reason of Service key's applied state ("" when untracked).
func (a *Announcer) ServiceReason(key string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s := a.services[key]; s != nil {
		return s.state.Reason
	}
	return ""
}
