//go:build linux

package bpf

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// DefaultPinDir is the production bpffs directory for the pinned maps and links.
const DefaultPinDir = "/sys/fs/bpf/bgplb"

// ErrNoBPFFS is returned when the pin directory is not on a bpf filesystem.
var ErrNoBPFFS = errors.New("pin directory is not on a bpf filesystem (mount -t bpf bpf /sys/fs/bpf)")

// prepPinDir creates pinDir (on an existing bpffs mount) and checks its filesystem.
func prepPinDir(pinDir string) error {
	if err := os.MkdirAll(pinDir, 0o700); err != nil {
		return fmt.Errorf("create pin dir %s: %w", pinDir, err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(pinDir, &st); err != nil {
		return fmt.Errorf("statfs pin dir %s: %w", pinDir, err)
	}
	if uint32(st.Type) != unix.BPF_FS_MAGIC {
		return fmt.Errorf("check pin dir %s: %w", pinDir, ErrNoBPFFS)
	}
	return nil
}

// hashSeed is the seed of the programs' 5-tuple hash (lb_hash_seed in lb.c).
var hashSeed atomic.Uint32

// SetHashSeed sets the seed of the 5-tuple hash that picks a flow's Maglev slot, for
// every later load of the programs (AttachUplinkMode, UpdatePrograms). The daemon calls it
// once at start, before attaching, with the cluster's seed (the same on every node, so a
// flow picks the same backend whichever node receives it). Default 0.
func SetHashSeed(seed uint32) { hashSeed.Store(seed) }

// directRedirect is lb_direct_redirect in lb.c (1: DeliveryRedirect).
var directRedirect atomic.Uint32

// SetDelivery sets how lb_uplink delivers VIP traffic to local pods, for every later load
// of the programs (AttachUplinkMode, UpdatePrograms). The daemon calls it once at start,
// before attaching. Default DeliveryStack. The programs on the pods' veths need no
// setting: the uplink program records the delivery of each flow in its reverse-NAT
// entry, and lb_pod / lb_egress follow it.
func SetDelivery(d Delivery) {
	if d == DeliveryRedirect {
		directRedirect.Store(1)
		return
	}
	directRedirect.Store(0)
}

// loadObjects loads what obj asks for (*lbObjects, *lbPrograms or *lbMaps)
// with every map pinned by name in pinDir: created and pinned when missing,
// reused when present.
func loadObjects(pinDir string, obj any) error {
	if err := prepPinDir(pinDir); err != nil {
		return err
	}
	spec, err := loadLb()
	if err != nil {
		return fmt.Errorf("load collection spec: %w", err)
	}
	if v, ok := spec.Variables["lb_hash_seed"]; ok {
		if err := v.Set(hashSeed.Load()); err != nil {
			return fmt.Errorf("set lb_hash_seed: %w", err)
		}
	}
	if v, ok := spec.Variables["lb_direct_redirect"]; ok {
		if err := v.Set(directRedirect.Load()); err != nil {
			return fmt.Errorf("set lb_direct_redirect: %w", err)
		}
	}
	opts := &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: pinDir}}
	for attempt := 0; ; attempt++ {
		err = spec.LoadAndAssign(obj, opts)
		// Two processes creating the same missing map race on its pin; the
		// loser gets EEXIST and the next attempt reuses the winner's map.
		if err == nil || !errors.Is(err, os.ErrExist) || attempt == 4 {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("load bpf objects with maps pinned in %s: %w", pinDir, err)
	}
	return nil
}
