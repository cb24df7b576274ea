package bpf

import (
	"encoding/binary"
	"hash/fnv"
	"slices"
)

// MaglevM is the size of every service's consistent-hash table (LB_MAGLEV_M in lb.h).
const MaglevM = 1021

// maglevHash hashes a backend id with a seed (FNV-1a, 64 bit).
func maglevHash(seed byte, id uint32) uint64 {
	h := fnv.New64a()
	var b [5]byte
	b[0] = seed
	binary.BigEndian.PutUint32(b[1:], id)
	h.Write(b[:]) //nolint:errcheck // hash.Hash.Write never fails
	return h.Sum64()
}

// MaglevTable computes the Maglev lookup table (Eisenbud et al., NSDI 2016)
// of a backend set: every slot names one backend id, each backend gets
// floor(M/N) or ceil(M/N) slots, and adding or removing one backend moves
// few slots of the others. The result depends only on the set of ids (they
// are deduplicated and sorted first). It returns nil for an empty set.
func MaglevTable(backendIDs []uint32) []uint32 {
	ids := slices.Clone(backendIDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	n := len(ids)
	if n == 0 {
		return nil
	}
	offset := make([]uint64, n)
	skip := make([]uint64, n)
	next := make([]uint64, n)
	for i, id := range ids {
		offset[i] = maglevHash(1, id) % MaglevM
		skip[i] = maglevHash(2, id)%(MaglevM-1) + 1
	}
	table := make([]uint32, MaglevM)
	filled := make([]bool, MaglevM)
	for placed := 0; ; {
		for i := range ids {
			c := (offset[i] + next[i]*skip[i]) % MaglevM
			for filled[c] {
				next[i]++
				c = (offset[i] + next[i]*skip[i]) % MaglevM
			}
			table[c] = ids[i]
			filled[c] = true
			next[i]++
			placed++
			if placed == MaglevM {
				return table
			}
		}
	}
}
