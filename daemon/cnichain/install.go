package cnichain

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// InstallPlugin copies the plugin binary src to binDir/bgplb atomically (temp file in
// binDir + rename), unless the installed one has the same content. It reports whether it
// wrote the binary.
func InstallPlugin(src, binDir string) (bool, error) {
	want, err := os.ReadFile(src)
	if err != nil {
		return false, fmt.Errorf("read plugin %s: %w", src, err)
	}
	dst := filepath.Join(binDir, PluginType)
	if have, err := os.ReadFile(dst); err == nil && bytes.Equal(have, want) {
		if fi, err := os.Stat(dst); err == nil && fi.Mode().Perm()&0o111 != 0 {
			return false, nil
		}
	}
	tmp, err := os.CreateTemp(binDir, ".bgplb-*")
	if err != nil {
		return false, fmt.Errorf("create temp file in %s: %w", binDir, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := io.Copy(tmp, bytes.NewReader(want)); err != nil {
		tmp.Close()
		return false, fmt.Errorf("copy plugin to %s: %w", binDir, err)
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return false, fmt.Errorf("chmod plugin: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("write plugin: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return false, fmt.Errorf("install plugin: %w", err)
	}
	return true, nil
}

// PluginInstalled reports whether binDir holds an executable bgplb plugin.
func PluginInstalled(binDir string) bool {
	fi, err := os.Stat(filepath.Join(binDir, PluginType))
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// ErrNotBPFFS means a pin dir to remove is not on a bpffs mount; Uninstall then leaves it.
var ErrNotBPFFS = errors.New("not on bpffs")

// Uninstall takes bgplb off the node: Unchain confDir, remove binDir/bgplb, then remove
// pinDir (bgplb's pinned maps and links; removing a link's last pin detaches its program).
// Empty arguments skip their step. It is idempotent and does every step it can, returning
// the errors joined.
func Uninstall(confDir, binDir, pinDir string) error {
	var errs []error
	if confDir != "" {
		if _, err := Unchain(confDir); err != nil {
			errs = append(errs, err)
		}
	}
	if binDir != "" && len(errs) == 0 {
		// Only once unchained: a chained plugin that is missing fails every pod's ADD.
		if err := os.Remove(filepath.Join(binDir, PluginType)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove plugin binary: %w", err))
		}
	}
	if pinDir != "" {
		if err := RemovePins(pinDir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// RemovePins removes pinDir and everything pinned under it, after checking that it is on
// a bpffs mount (so a wrong flag cannot remove an ordinary directory). A missing pinDir is
// not an error.
func RemovePins(pinDir string) error {
	if !filepath.IsAbs(pinDir) {
		return fmt.Errorf("remove pins: %q must be an absolute path", pinDir)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(pinDir, &fs); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("stat pin dir %s: %w", pinDir, err)
	}
	if uint32(fs.Type) != unix.BPF_FS_MAGIC {
		return fmt.Errorf("remove pins in %s: %w", pinDir, ErrNotBPFFS)
	}
	// The parent on bpffs too: pinDir is below the mount, never the mount itself.
	if err := unix.Statfs(filepath.Dir(filepath.Clean(pinDir)), &fs); err != nil || uint32(fs.Type) != unix.BPF_FS_MAGIC {
		return fmt.Errorf("remove pins: %s is the bpffs mount itself, not a directory below it", pinDir)
	}
	if err := os.RemoveAll(pinDir); err != nil {
		return fmt.Errorf("remove pins in %s: %w", pinDir, err)
	}
	return nil
}
