package bpf

import (
	"slices"
	"testing"
)

func TestMaglevTableBalanceAndDeterminism(t *testing.T) {
	if MaglevTable(nil) != nil {
		t.Fatal("empty set must give no table")
	}
	for _, n := range []int{1, 2, 3, 7, 25, 100} {
		ids := make([]uint32, n)
		for i := range ids {
			ids[i] = uint32(1000 + 37*i)
		}
		tab := MaglevTable(ids)
		if len(tab) != MaglevM {
			t.Fatalf("n=%d: table size %d", n, len(tab))
		}
		count := map[uint32]int{}
		for _, id := range tab {
			count[id]++
		}
		if len(count) != n {
			t.Fatalf("n=%d: %d backends in the table", n, len(count))
		}
		lo, hi := MaglevM/n, (MaglevM+n-1)/n
		for id, c := range count {
			if c < lo || c > hi {
				t.Errorf("n=%d: backend %d has %d slots, want %d..%d", n, id, c, lo, hi)
			}
		}
		// Order and duplicates of the input do not matter.
		rev := slices.Clone(ids)
		slices.Reverse(rev)
		rev = append(rev, ids[0])
		if !slices.Equal(MaglevTable(rev), tab) {
			t.Fatalf("n=%d: table depends on input order", n)
		}
	}
}

func TestMaglevTableDisruption(t *testing.T) {
	ids := []uint32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	before := MaglevTable(ids)
	after := MaglevTable(slices.DeleteFunc(slices.Clone(ids), func(id uint32) bool { return id == 4 }))
	moved := 0
	for i := range before {
		if before[i] != 4 && before[i] != after[i] {
			moved++
		}
	}
	// Removing one of ten backends must remap its own slots and only a few others.
	if moved > MaglevM/10 {
		t.Fatalf("removing one backend moved %d slots of the others (of %d)", moved, MaglevM)
	}
}
