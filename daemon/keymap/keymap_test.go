package keymap

import (
	"fmt"
	"testing"
)

// TestShrink: a map that held ShrinkAfter keys is dropped once it empties; a smaller one
// is kept (and so reused without allocating).
func TestShrink(t *testing.T) {
	var m Map[int]
	for i := range ShrinkAfter {
		m.Set(fmt.Sprint(i), i)
	}
	if m.Len() != ShrinkAfter || m.Peak() != ShrinkAfter {
		t.Fatalf("len %d peak %d, want %d", m.Len(), m.Peak(), ShrinkAfter)
	}
	if v, ok := m.Get("7"); !ok || v != 7 {
		t.Fatalf("Get(7) = %d, %v", v, ok)
	}
	for i := range ShrinkAfter - 1 {
		m.Delete(fmt.Sprint(i))
	}
	if !m.Allocated() || m.Len() != 1 {
		t.Fatalf("dropped before empty: allocated %v len %d", m.Allocated(), m.Len())
	}
	m.Delete(fmt.Sprint(ShrinkAfter - 1))
	if m.Allocated() || m.Peak() != 0 {
		t.Fatalf("after emptying: allocated %v peak %d; want made anew", m.Allocated(), m.Peak())
	}

	m.Set("a", 1)
	m.Set("b", 2)
	n := 0
	for range m.All() {
		n++
	}
	if n != 2 {
		t.Fatalf("All yielded %d keys, want 2", n)
	}
	m.Delete("a")
	m.Delete("b")
	if !m.Allocated() {
		t.Fatal("a small map was dropped; it should be kept")
	}
}
