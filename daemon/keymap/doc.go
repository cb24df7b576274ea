// Package keymap provides Map, a map keyed by strings that gives back the memory of a
// burst. A Go map keeps the buckets of the largest size it ever had: after 10k Services
// passed through a work queue's set or a controller's bookkeeping, an empty map still
// holds about a megabyte. A Map is made anew once it empties after holding ShrinkAfter
// keys; smaller maps are kept, so steady small churn allocates nothing.
//
// Users: daemon/watch (the work queue's sets) and daemon/lbipam (pending Services and
// written statuses). A Map is not safe for concurrent use; its owner locks.
package keymap
