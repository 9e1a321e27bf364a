// Package cgroups creates, limits, fills and removes stepbox's control
// groups on cgroup v1 or v2, whichever the host runs, and reads them back
// as typed snapshots. See cgroups(7) and the kernel's cgroup-v2.rst.
package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// DefaultRoot is where systems mount their cgroup filesystems.
const DefaultRoot = "/sys/fs/cgroup"

// Mode is how a host mounts its cgroups.
type Mode int

const (
	// Unified is pure cgroup v2: one tree at the root, every controller in it.
	Unified Mode = iota + 1
	// Legacy is pure cgroup v1: one tree per controller under the root.
	Legacy
	// Hybrid is v1 trees for the controllers plus a cgroup2 tree at
	// ROOT/unified that holds no controllers (systemd tracks processes
	// there). stepbox uses the v1 trees, since only they can limit.
	Hybrid
)

func (m Mode) String() string {
	switch m {
	case Unified:
		return "unified (cgroup v2)"
	case Legacy:
		return "legacy (cgroup v1)"
	case Hybrid:
		return "hybrid (cgroup v1 controllers, empty cgroup v2 at unified/)"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Version is the cgroup version stepbox works with in this mode.
func (m Mode) Version() int {
	if m == Unified {
		return 2
	}
	return 1
}

// ErrNoCgroups means the root holds no cgroup filesystem stepbox knows.
var ErrNoCgroups = errors.New("no cgroup filesystem")

// Detect tells how root (normally /sys/fs/cgroup) is mounted. The
// filesystem magic from statfs(2) decides on a live host; a fixture tree
// (plain directories) is judged by the files each version always has:
// cgroup.controllers in v2, tasks in v1.
func Detect(root string) (Mode, error) {
	kind, err := treeKind(root)
	if err != nil {
		return 0, err
	}
	if kind == 2 {
		return Unified, nil
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return 0, fmt.Errorf("detect cgroup mode: read %s: %w", root, err)
	}
	v1, v2 := false, false
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		k, err := treeKind(filepath.Join(root, e.Name()))
		if err != nil {
			return 0, err
		}
		switch {
		case k == 1:
			v1 = true
		case k == 2 && e.Name() == "unified":
			v2 = true
		}
	}
	switch {
	case v1 && v2:
		return Hybrid, nil
	case v1:
		return Legacy, nil
	}
	return 0, fmt.Errorf("detect cgroup mode: %s: %w (no cgroup2 at the root, no v1 controller below it)", root, ErrNoCgroups)
}

// treeKind says whether dir is the top of a cgroup v2 tree (2), a v1
// hierarchy (1) or neither (0).
func treeKind(dir string) (int, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("detect cgroup mode: statfs(%q): %w", dir, err)
	}
	switch st.Type {
	case unix.CGROUP2_SUPER_MAGIC:
		return 2, nil
	case unix.CGROUP_SUPER_MAGIC:
		return 1, nil
	}
	if exists(filepath.Join(dir, "cgroup.controllers")) {
		return 2, nil
	}
	if exists(filepath.Join(dir, "tasks")) {
		return 1, nil
	}
	return 0, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// IsCgroupFS reports whether dir lies on a cgroup filesystem (v1 or v2),
// as statfs(2) says: teardown removes nothing anywhere else.
func IsCgroupFS(dir string) bool {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return false
	}
	return st.Type == unix.CGROUP2_SUPER_MAGIC || st.Type == unix.CGROUP_SUPER_MAGIC
}
