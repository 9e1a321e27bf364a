package cgroups

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"stepbox/primitives/step"
)

// Freezing: a process of a box that sees its cgroup's freezer may freeze
// it: freezer.state FROZEN in the v1 freezer hierarchy (a box that made
// its cgroup namespace before `cgroup attach` sees the host's whole v1
// tree), cgroup.freeze 1 in a cgroup2 tree (v2, and the tracking tree of
// a hybrid host), in its own cgroup, one below it that it made, or stepbox's
// parent above them (ut27 F2). A task frozen by the v1 freezer does not act
// on SIGKILL until it is thawed (cgroup-v1/freezer-subsystem.rst), and a PID
// 1 whose namespace holds one waits in the kernel for it: teardown thaws
// every freeze that holds a box's processes before and after it signals
// them. (A task frozen by cgroup2's cgroup.freeze dies of SIGKILL and
// cgroup.kill; it is thawed all the same, so nothing is left frozen.)

// freezeFiles are the files a freeze is set in, by cgroup version, with
// the value that thaws: freezer.state (v1: written THAWED where the cgroup
// froze itself, freezer.self_freezing 1) and cgroup.freeze (v2).
const (
	v1State  = "freezer.state"
	v1Self   = "freezer.self_freezing"
	v2Freeze = "cgroup.freeze"
	v2Events = "cgroup.events"
)

// thawOne thaws dir where dir itself is frozen (not merely below a frozen
// cgroup: that one is thawed at its own place). It reports whether it
// wrote anything.
func thawOne(fsys cgroupFS, s *step.Step, dir string) (bool, error) {
	if self, err := readFile(filepath.Join(dir, v1Self)); err == nil {
		if self != "1" {
			return false, nil
		}
		return true, writeFile(fsys, s, filepath.Join(dir, v1State), "THAWED")
	}
	if v, err := readFile(filepath.Join(dir, v2Freeze)); err == nil && v == "1" {
		return true, writeFile(fsys, s, filepath.Join(dir, v2Freeze), "0")
	}
	return false, nil
}

// thaw thaws every freeze that holds the processes of dir and of the
// cgroups below it: from the session's parent cgroup (stepbox-PID, the
// nearest one above dir) down to dir, then every cgroup below dir, parents
// first. Cgroups above stepbox's parent are the host's and left as they
// are; a dir with no parent of stepbox's above it has only itself and its
// children thawed. It returns the cgroups it thawed.
func thaw(fsys cgroupFS, s *step.Step, dir string) ([]string, error) {
	if _, real := fsys.(kernelFS); !real {
		return nil, nil
	}
	var chain []string // dir's ancestors up to stepbox's parent, nearest first
	for up := filepath.Dir(dir); up != dir && up != "/" && up != "."; up = filepath.Dir(up) {
		chain = append(chain, up)
		if _, ok := sessionOf(filepath.Base(up)); ok {
			break
		}
	}
	if n := len(chain); n == 0 || !isParentDir(chain[n-1]) {
		chain = nil
	}
	var thawed []string
	var errs []error
	for i := len(chain) - 1; i >= 0; i-- {
		if did, err := thawOne(fsys, s, chain[i]); did {
			thawed, errs = append(thawed, chain[i]), append(errs, err)
		}
	}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if did, err := thawOne(fsys, s, p); did {
			thawed, errs = append(thawed, p), append(errs, err)
		}
		return nil
	})
	return thawed, errors.Join(errs...)
}

// isParentDir says whether dir is a session's parent cgroup: named
// stepbox-PID, and a cgroup (its cgroup.procs is there).
func isParentDir(dir string) bool {
	_, ok := sessionOf(filepath.Base(dir))
	return ok && exists(filepath.Join(dir, "cgroup.procs"))
}

// Thaw thaws every freeze that holds a process of the groups gs or one
// of the processes pids: in each directory of each group, the group and
// every cgroup below it, and the cgroups between it and stepbox's parent
// above it, the parent included (a freeze there holds every cgroup below);
// then, for each process in them and each of pids, the cgroups that hold
// it (thawProcs). It returns the cgroups it thawed.
//
// Every rm runs it: only the group's directories a freeze can be set in
// are walked (canFreeze), and a process's freezer cgroup once, and not at
// all where a group's walk covered it (the walks of every hierarchy, and
// again for each process, were most of rm's time).
func Thaw(pids []int, gs ...*Group) ([]string, error) {
	var thawed, walked []string
	var errs []error
	for _, g := range gs {
		if g == nil {
			continue
		}
		for _, d := range g.all() {
			if canFreeze(d) {
				t, err := thaw(kernelFS{}, nil, d.Path)
				thawed, errs = append(thawed, t...), append(errs, err)
				walked = append(walked, d.Path)
			}
			// Every hierarchy's tree lists the box's processes: one the
			// box moved to another freezer cgroup is still found here.
			pids = append(pids, treePIDs(d.Path)...)
		}
	}
	slices.Sort(pids) // a process is in each hierarchy's tree
	t, err := thawProcs(walked, slices.Compact(pids)...)
	return append(thawed, t...), errors.Join(append(errs, err)...)
}

// canFreeze says whether a freeze can be set in d's hierarchy, so that
// thaw has something to look at there: cgroup2 (cgroup.freeze is a core
// file of every cgroup but the root) or a v1 hierarchy with the freezer
// controller. No cgroup of another v1 hierarchy (memory, pids, a named
// one) has a file thawOne reads.
func canFreeze(d Dir) bool {
	return d.Hierarchy == "" || slices.Contains(strings.Split(d.Hierarchy, ","), "freezer")
}

// thawProcs thaws, for each process of pids, the freezes that hold it
// (thaw), where its cgroup is a session's parent cgroup or below one: a box
// may have moved a process of its own into any cgroup it can reach before
// freezing it. A process in no cgroup of stepbox's is left as it is; one
// in a cgroup at or below a directory of walked was thawed by that walk
// (the walk covers the cgroups above it up to stepbox's parent, it and
// every one below). It returns the cgroups it thawed.
func thawProcs(walked []string, pids ...int) ([]string, error) {
	var thawed []string
	var errs []error
	dirs := freezerDirs(pids)
	slices.Sort(dirs) // the processes of one cgroup share its directories
	for _, dir := range slices.Compact(dirs) {
		if slices.ContainsFunc(walked, func(w string) bool { return dir == w || strings.HasPrefix(dir, w+"/") }) || !belowParent(dir) {
			continue
		}
		t, err := thaw(kernelFS{}, nil, dir)
		thawed, errs = append(thawed, t...), append(errs, err)
	}
	return thawed, errors.Join(errs...)
}

// belowParent says whether dir is a session's parent cgroup or below one.
func belowParent(dir string) bool {
	for ; dir != "/" && dir != "."; dir = filepath.Dir(dir) {
		if isParentDir(dir) {
			return true
		}
	}
	return false
}

// freezerDirs lists the directories of the cgroups that may freeze the
// processes pids: each one's cgroup in the v1 freezer hierarchy and in the
// cgroup2 tree, where this process's mount table shows them.
func freezerDirs(pids []int) []string {
	if len(pids) == 0 {
		return nil
	}
	mounts, err := ThreadMounts()
	if err != nil {
		return nil
	}
	var out []string
	for _, pid := range pids {
		p, err := procfs.NewProc(pid)
		if err != nil {
			continue
		}
		cgs, err := p.Cgroups()
		if err != nil {
			continue
		}
		for _, c := range cgs {
			v2 := c.HierarchyID == 0 && len(c.Controllers) == 0
			if !v2 && !slices.Contains(c.Controllers, "freezer") {
				continue
			}
			for _, m := range mounts {
				if v2 && m.FSType != "cgroup2" || !v2 && (m.FSType != "cgroup" || !hasKey(m.SuperOptions, "freezer")) {
					continue
				}
				rest, ok := strings.CutPrefix(c.Path, strings.TrimSuffix(m.Root, "/"))
				if ok && (rest == "" || strings.HasPrefix(rest, "/")) {
					out = append(out, m.MountPoint+rest)
					break
				}
			}
		}
	}
	return out
}

// Frozen names the cgroup that holds process pid frozen, with the file
// that says so: its cgroup in the v1 freezer hierarchy reads freezer.state
// FROZEN or FREEZING (itself or one above it frozen), or its cgroup2
// cgroup's cgroup.events says frozen 1. It is "" when none does.
func Frozen(pid int) string {
	for _, dir := range freezerDirs([]int{pid}) {
		if v, err := readFile(filepath.Join(dir, v1State)); err == nil && v != "THAWED" {
			return filepath.Join(dir, v1State) + " reads " + v
		}
		if v, err := readFile(filepath.Join(dir, v2Events)); err == nil && strings.Contains("\n"+v+"\n", "\nfrozen 1\n") {
			return filepath.Join(dir, v2Events) + " reads frozen 1"
		}
	}
	return ""
}

// ThreadMounts is the mount table as this thread sees it, not /proc/self's:
// self is the thread group leader's, and a goroutine that exited locked
// into a box's mount namespace leaves the leader wedged there, with a
// table that lacks the host's mounts (teardown would take a box's upper
// tmpfs as already gone).
func ThreadMounts() ([]*procfs.MountInfo, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return procfs.GetProcMounts(unix.Gettid())
}
