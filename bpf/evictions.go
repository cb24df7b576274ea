//go:build linux

package bpf

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// lb_counters indexes (enum lb_counter in lb.h).
const (
	cntCTCreated     = 0
	cntRevNATCreated = 1
	cntRevNATDeleted = 2
)

// Evictions are estimates of the entries the kernel evicted from the LRU maps since
// they were created: lb_ct (conntrack) and lb_revnat (reverse NAT). The kernel does not
// report LRU evictions, so they are derived from what the programs count: entries
// created for new tuples, minus entries the programs deleted, minus the entries live
// now. Packets processed while the maps are read can make one reading off by a few.
// A flow whose conntrack entry was evicted may move to another backend; one whose
// reverse-NAT entry was evicted gets its replies unrewritten until its next packet.
type Evictions struct {
	CT, RevNAT uint64
}

// LRUEvictions returns the eviction estimates (see Evictions). It walks both LRU maps'
// keys (up to LB_MAX_CT each), so call it every few seconds at most.
func (m *Maps) LRUEvictions() (Evictions, error) {
	var ev Evictions
	ctCreated, err := m.counter(cntCTCreated)
	if err != nil {
		return ev, err
	}
	rnCreated, err := m.counter(cntRevNATCreated)
	if err != nil {
		return ev, err
	}
	rnDeleted, err := m.counter(cntRevNATDeleted)
	if err != nil {
		return ev, err
	}
	ctLive, err := countKeys(m.m.LbCt)
	if err != nil {
		return ev, fmt.Errorf("count conntrack entries: %w", err)
	}
	rnLive, err := countKeys(m.m.LbRevnat)
	if err != nil {
		return ev, fmt.Errorf("count reverse-NAT entries: %w", err)
	}
	ev.CT = subClamp(ctCreated, ctLive)
	ev.RevNAT = subClamp(rnCreated, rnDeleted+rnLive)
	return ev, nil
}

func (m *Maps) counter(idx uint32) (uint64, error) {
	var per []uint64
	if err := m.m.LbCounters.Lookup(idx, &per); err != nil {
		return 0, fmt.Errorf("lookup counter %d: %w", idx, err)
	}
	var n uint64
	for _, c := range per {
		n += c
	}
	return n, nil
}

func countKeys(mp *ebpf.Map) (uint64, error) {
	var (
		n   uint64
		key []byte
	)
	iter := mp.Iterate()
	var val []byte
	for iter.Next(&key, &val) {
		n++
	}
	return n, iter.Err()
}

func subClamp(a, b uint64) uint64 {
	if b >= a {
		return 0
	}
	return a - b
}
