package lab

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// cgroupRootDir is where the cgroup hierarchies are mounted. On a cgroup v1 machine
// (the reference VM) each controller is a directory below it, plus "unified" (the v2
// hierarchy, where runc also creates its cgroups); on a v2-only machine it is the one
// hierarchy.
const cgroupRootDir = "/sys/fs/cgroup"

// nodeCgroup is node n's kubelet cgroupRoot (pods below it); nodeSysCgroup holds its
// holder, containerd, the shims and the kubelet. Both start with the lab prefix, so
// labs of other prefixes never see them.
func nodeCgroup(n Node) string    { return Prefix + "-lab-" + n.Name }
func nodeSysCgroup(n Node) string { return Prefix + "-lab-" + n.Name + "-sys" }

// cgroupHierarchies returns the directories of the mounted cgroup hierarchies.
func cgroupHierarchies() []string {
	if _, err := os.Stat(filepath.Join(cgroupRootDir, "cgroup.controllers")); err == nil {
		return []string{cgroupRootDir} // v2 only
	}
	entries, err := os.ReadDir(cgroupRootDir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		p := filepath.Join(cgroupRootDir, e.Name())
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() { // controllers joined as symlinks (cpu,cpuacct) appear once
			if _, err := os.Stat(filepath.Join(p, "cgroup.procs")); err == nil {
				out = append(out, p)
			}
		}
	}
	return out
}

// makeNodeCgroups creates node n's two cgroups in every hierarchy (cpuset ones with
// the parent's cpus and mems, which a new cpuset cgroup lacks).
func makeNodeCgroups(n Node) error {
	for _, h := range cgroupHierarchies() {
		for _, name := range []string{nodeCgroup(n), nodeSysCgroup(n)} {
			dir := filepath.Join(h, name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("create cgroup %s: %w", dir, err)
			}
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				parent, err := os.ReadFile(filepath.Join(h, f))
				if err != nil {
					continue // not the cpuset hierarchy
				}
				if err := os.WriteFile(filepath.Join(dir, f), parent, 0o644); err != nil {
					return fmt.Errorf("set %s of %s: %w", f, dir, err)
				}
			}
		}
	}
	return nil
}

// joinCgroup moves pid into cgroup name of every hierarchy.
func joinCgroup(pid int, name string) error {
	for _, h := range cgroupHierarchies() {
		p := filepath.Join(h, name, "cgroup.procs")
		if err := os.WriteFile(p, []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("move pid %d into %s: %w", pid, p, err)
		}
	}
	return nil
}

// labCgroupDirs returns every cgroup directory of this prefix's lab nodes in every
// hierarchy, deepest first.
func labCgroupDirs() []string {
	var out []string
	for _, h := range cgroupHierarchies() {
		tops, _ := filepath.Glob(filepath.Join(h, Prefix+"-lab-node*"))
		for _, top := range tops {
			_ = filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					out = append(out, p)
				}
				return nil // best effort: a vanished cgroup has nothing to kill
			})
		}
	}
	// WalkDir lists parents before children: reversed, children come first.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// pidsInCgroups returns the processes in the given cgroup directories.
func pidsInCgroups(dirs []string) []int {
	seen := map[int]bool{}
	var out []int
	for _, d := range dirs {
		data, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil && !seen[pid] {
				seen[pid] = true
				out = append(out, pid)
			}
		}
	}
	return out
}

// downNodeCgroups kills every process in the lab nodes' cgroups (containerd, shims,
// containers, the kubelet, the holders) and removes the cgroups. A frozen cgroup
// (freezer) is thawed first so its processes can die.
func downNodeCgroups() error {
	dirs := labCgroupDirs()
	if len(dirs) == 0 {
		return nil
	}
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "freezer.state")); err == nil {
			_ = os.WriteFile(filepath.Join(d, "freezer.state"), []byte("THAWED"), 0o644) // best effort
		}
	}
	terminate(pidsInCgroups(dirs), 2*time.Second)
	var errs []error
	for _, d := range dirs {
		var err error
		for range 50 { // a dying process leaves its cgroup a moment after SIGKILL
			if err = os.Remove(d); err == nil || errors.Is(err, fs.ErrNotExist) {
				err = nil
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w (processes: %v)", d, err, pidsInCgroups([]string{d})))
		}
	}
	return errors.Join(errs...)
}
