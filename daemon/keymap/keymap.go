package keymap

import "iter"

// ShrinkAfter is the size from which a Map is made anew once it empties.
const ShrinkAfter = 1024

// Map is a map[string]V that is made anew once it empties after holding ShrinkAfter keys.
// The zero value is an empty map ready to use.
type Map[V any] struct {
	m    map[string]V
	peak int // most keys m held since it was made
}

// Get returns the value of key and whether key is present.
func (k *Map[V]) Get(key string) (V, bool) {
	v, ok := k.m[key]
	return v, ok
}

// Set stores v under key.
func (k *Map[V]) Set(key string, v V) {
	if k.m == nil {
		k.m = map[string]V{}
	}
	k.m[key] = v
	k.peak = max(k.peak, len(k.m))
}

// Delete removes key; the last key of a map that held ShrinkAfter keys drops the map.
func (k *Map[V]) Delete(key string) {
	delete(k.m, key)
	if len(k.m) == 0 && k.peak >= ShrinkAfter {
		k.m, k.peak = nil, 0
	}
}

// Len returns the number of keys.
func (k *Map[V]) Len() int { return len(k.m) }

// All iterates over the keys and values in no particular order. Set and Delete are
// allowed while iterating, with the semantics of a Go map.
func (k *Map[V]) All() iter.Seq2[string, V] {
	return func(yield func(string, V) bool) {
		for key, v := range k.m {
			if !yield(key, v) {
				return
			}
		}
	}
}

// Peak returns the most keys the map held since it was last made anew.
func (k *Map[V]) Peak() int { return k.peak }

// Allocated reports whether the map currently holds a Go map (false after it was made
// anew and before the next Set).
func (k *Map[V]) Allocated() bool { return k.m != nil }
