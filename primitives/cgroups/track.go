package cgroups

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"stepbox/primitives/step"
)

// A box's processes are tracked from `new` by a cgroup of stepbox's own,
// the box's tracking cgroup: a process cannot leave a cgroup except by
// writing its PID to another cgroup's cgroup.procs, which needs write
// access to the cgroup tree, so a box that clears its environment, double
// forks and re-parents to init is still found there (issue 15 item 3).
//
// Where it goes, per host:
//   - cgroup v2: a leaf beside the learner's box cgroups under stepbox's
//     parent, <box>.track. `cgroup attach` moves the box's PID 1 to
//     the learner's cgroup, also under the parent, so teardown ends what
//     is in either (cgroup.kill).
//   - hybrid (v1 controllers and an empty cgroup2 tree, as on this host):
//     the cgroup2 tree, which has no controllers but tracks processes and
//     offers cgroup.kill; the learner's `cgroup attach` writes only the v1
//     trees, so the box never leaves it. And the v1 pids hierarchy, where
//     stepbox's parent carries the pids limit.
//   - v1 alone: the pids hierarchy (else the first one).
//
// The limit: stepbox's parent cgroup gets pids.max SessionPidsMax, so
// every box of a session together holds at most that many tasks and a
// fork bomb in a box, with or without a cgroup of the learner's, stops
// there instead of taking the tasks the session needs (issue 15 item 4).
// The session itself is never under it: it stays in its own cgroup. The
// learner's `cgroup limit pids N` sits under it, in a child cgroup.

// SessionPidsMax is the pids.max of stepbox's parent cgroup: generous for
// any lesson (an idle box is one or two tasks, a build a few dozen) and a
// few percent of a stock host's pid_max (32768) or threads-max.
const SessionPidsMax = 4096

// TrackSuffix ends the name of a box's tracking cgroup, <box>.track; box
// names cannot hold a '.', so it never meets a learner's cgroup name.
const TrackSuffix = ".track"

// IsTrack tells a tracking cgroup by its directory name.
func IsTrack(name string) bool { return strings.HasSuffix(name, TrackSuffix) }

// TrackGroup is the box's tracking cgroup under parent, as MakeTrack will
// make it; it changes nothing, so the ledger can record it first.
func TrackGroup(parent *Group, box, id string) (*Group, error) {
	if parent == nil {
		return nil, fmt.Errorf("track box %s: no parent cgroup", box)
	}
	// Named after the box alone: `find /sys/fs/cgroup -name '*ID*'`, as
	// the lessons teach, finds the learner's cgroups and not this one.
	if _, _, err := boxGroupName(box, id); err != nil {
		return nil, err
	}
	name := box + TrackSuffix
	all := parent.child(name)
	g := &Group{Name: name}
	if len(all.Dirs) == 1 {
		g.Dirs = all.Dirs // v2: the one tree
	} else if d, ok := all.dir(Pids); ok {
		g.Dirs = []Dir{d}
	} else if len(all.Dirs) > 0 && len(parent.Track) == 0 {
		g.Dirs = all.Dirs[:1]
	}
	for _, t := range parent.Track {
		g.Track = append(g.Track, Dir{Hierarchy: t.Hierarchy, Path: filepath.Join(t.Path, name), Cgroup: filepath.Join(t.Cgroup, name)})
	}
	if len(g.Dirs)+len(g.Track) == 0 {
		return nil, fmt.Errorf("track box %s: the parent %s is in no hierarchy", box, parent.Name)
	}
	return g, nil
}

// MakeTrack creates g's directories and moves pid, the box process, into
// each before it runs anything: its children start there. It returns the
// directories it made, whether or not it failed: only those are the box's
// to empty and remove. Every directory is made before pid enters any, so
// one that is there already (EEXIST: not stepbox's, ut31 F6) leaves the
// others empty, and they are removed here.
func MakeTrack(g *Group, pid int) (made []string, s *step.Step, err error) {
	s = &step.Step{
		Command: "track",
		Summary: "made cgroup " + g.Name + ", stepbox's own, to find every process of the box at teardown",
		Man:     []string{"cgroups(7)"},
	}
	undo := func(err error) ([]string, *step.Step, error) {
		errs := []error{err}
		for _, m := range slices.Backward(made) {
			errs = append(errs, rmdir(kernelFS{}, s, m))
		}
		return made, s, fmt.Errorf("track the box's processes in %s: %w", g.Name, errors.Join(errs...))
	}
	for _, d := range g.all() {
		if err := mkdir(kernelFS{}, s, d.Path); err != nil {
			return undo(err)
		}
		made = append(made, d.Path)
	}
	for _, d := range g.all() {
		if err := writeFile(kernelFS{}, s, filepath.Join(d.Path, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return undo(err)
		}
	}
	return made, s, nil
}

// all is every directory of g: its tracking-only ones first, then its
// hierarchies. Kill goes in this order: one cgroup.kill in the cgroup2
// tree of a hybrid host ends what a SIGKILL loop over v1 would chase.
func (g *Group) all() []Dir { return append(slices.Clone(g.Track), g.Dirs...) }

// Kill ends every process in g and in every cgroup below it, in each of
// its directories, and returns the processes it saw end and those still
// there after: cgroup.kill where the kernel has it (cgroup v2, Linux 5.14+:
// it ends forks under way too), else SIGKILL to what cgroup.procs lists, a
// few rounds for processes forked meanwhile. Everything in the cgroup is
// the box's: only the box's processes ever enter it.
func Kill(g *Group) (ended, survivors []int, err error) {
	_, terr := Thaw(nil, g) // a frozen task acts on no signal (freeze.go)
	errs := []error{terr}
	for _, d := range g.all() {
		if !exists(d.Path) {
			continue
		}
		e, err := killTree(kernelFS{}, nil, d.Path)
		ended, errs = append(ended, e...), append(errs, err)
	}
	for _, d := range g.all() {
		survivors = append(survivors, treePIDs(d.Path)...)
	}
	return sortedSet(ended), sortedSet(survivors), errors.Join(errs...)
}

// sortedSet sorts pids and drops repeats: a hybrid host lists a process
// in each of its trees.
func sortedSet(pids []int) []int {
	slices.Sort(pids)
	return slices.Compact(pids)
}

// Members lists the processes in g itself, in every tree it has a
// directory in (Dirs and Track), sorted, each once: one read of
// cgroup.procs a directory.
func Members(g *Group) ([]int, error) { return procsIn(g.all()) }

// TreeMembers lists the processes in g and in every cgroup below it, in
// every tree it has a directory in, sorted, each once.
func TreeMembers(g *Group) []int {
	var all []int
	for _, d := range g.all() {
		all = append(all, treePIDs(d.Path)...)
	}
	return sortedSet(all)
}

// procsIn lists the processes in dirs, sorted, each once.
func procsIn(dirs []Dir) ([]int, error) {
	var all []int
	for _, d := range dirs {
		pids, err := readPIDs(filepath.Join(d.Path, "cgroup.procs"))
		if err != nil {
			return nil, err
		}
		all = append(all, pids...)
	}
	slices.Sort(all)
	return slices.Compact(all), nil
}

// killStall is how long Kill waits for a cgroup to empty with no process
// going meanwhile; killCap bounds the whole wait.
const (
	killStall = 5 * time.Second
	killCap   = 3 * time.Minute
)

// killTree ends every process in dir and below it, and waits (bounded)
// until the tree is empty. It returns the processes it saw there and saw
// go: what teardown counts as ended. s, when not nil, records what it did.
func killTree(fsys cgroupFS, s *step.Step, dir string) (ended []int, err error) {
	if !populated(dir) {
		return nil, nil
	}
	_, real := fsys.(kernelFS)
	seen := treePIDs(dir)
	// A task the v1 freezer holds acts on no signal: thaw before, and
	// after, so one frozen again meanwhile dies of the SIGKILL it has.
	_, terr := thaw(fsys, s, dir)
	if kill := filepath.Join(dir, "cgroup.kill"); exists(kill) {
		if err := writeFile(fsys, s, kill, "1"); err != nil {
			return nil, err
		}
		if s != nil {
			s.Notes = append(s.Notes, fmt.Sprintf("%s still held processes: cgroup.kill ended them", dir))
		}
	} else if real {
		for round := 0; round < 5 && populated(dir); round++ {
			pids := treePIDs(dir)
			seen = append(seen, pids...)
			for _, pid := range pids {
				unix.Kill(pid, unix.SIGKILL)
			}
			waitExit(pids, time.Duration(round+1)*5*time.Millisecond)
		}
		if s != nil {
			s.Notes = append(s.Notes, fmt.Sprintf("%s still held processes: they were sent SIGKILL", dir))
		}
	}
	_, err = thaw(fsys, s, dir)
	terr = errors.Join(terr, err)
	if !real {
		return nil, terr // nothing was signalled
	}
	// A killed process stays in its cgroup until the kernel has torn it
	// down: thousands of them (a fork bomb's) take seconds, a minute
	// under emulation. Wait while they keep going, not for ever: a
	// process that has not gone for killStall is stuck.
	wait, pids := 5*time.Millisecond, treePIDs(dir)
	left := len(pids)
	moved, deadline := time.Now(), time.Now().Add(killCap)
	for left > 0 && time.Since(moved) < killStall && time.Now().Before(deadline) {
		waitExit(pids, wait)
		wait = min(2*wait, 200*time.Millisecond)
		pids = treePIDs(dir)
		if n := len(pids); n < left {
			left, moved = n, time.Now()
		}
	}
	for _, pid := range sortedSet(seen) {
		if !slices.Contains(pids, pid) {
			ended = append(ended, pid)
		}
	}
	return ended, terr
}

// killOwn ends the processes in dir itself, not below it, by SIGKILL
// (cgroup.kill would end its whole subtree), a few rounds for processes
// forked meanwhile, and returns those it saw go.
func killOwn(dir string) (ended []int) {
	var seen []int
	for round := 0; round < 5; round++ {
		pids, _ := readPIDs(filepath.Join(dir, "cgroup.procs"))
		if len(pids) == 0 {
			break
		}
		seen = append(seen, pids...)
		for _, pid := range pids {
			unix.Kill(pid, unix.SIGKILL)
		}
		// After the signal, as teardown does: a frozen process dies of
		// the SIGKILL it holds once thawed, and runs nothing before.
		thawProcs(nil, pids...)
		waitExit(pids, time.Duration(round+1)*100*time.Millisecond)
	}
	left, _ := readPIDs(filepath.Join(dir, "cgroup.procs"))
	for _, pid := range sortedSet(seen) {
		if !slices.Contains(left, pid) {
			ended = append(ended, pid)
		}
	}
	return ended
}

// waitExit waits until every process of pids has exited, or for at most
// timeout: a pidfd reads POLLIN once its process has exited (pidfd_open(2)),
// by which time the kernel has taken it out of its cgroups (cgroup_exit).
// It returns at once when they go, where a sleep would wait out its time.
// A PID that cannot be opened is gone already; one reused meanwhile by a
// process elsewhere only makes the wait last its timeout, as the sleep did.
func waitExit(pids []int, timeout time.Duration) {
	var fds []unix.PollFd
	for _, pid := range pids {
		if fd, err := unix.PidfdOpen(pid, 0); err == nil {
			fds = append(fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
		}
	}
	defer func() {
		for _, f := range fds {
			unix.Close(int(f.Fd))
		}
	}()
	deadline := time.Now().Add(timeout)
	for open := slices.Clone(fds); len(open) > 0; {
		ms := int(time.Until(deadline).Milliseconds())
		if ms <= 0 {
			return
		}
		n, err := unix.Poll(open, ms)
		if err != nil && err != unix.EINTR {
			return
		}
		if n <= 0 {
			continue // EINTR, or the time is up (checked above)
		}
		running := open[:0]
		for _, f := range open {
			if f.Revents == 0 {
				running = append(running, f)
			}
		}
		open = running
	}
}

// treePIDs lists the processes in dir and every cgroup below it.
func treePIDs(dir string) []int {
	var pids []int
	subs, _ := subdirs(dir)
	for _, c := range subs {
		pids = append(pids, treePIDs(filepath.Join(dir, c))...)
	}
	own, _ := readPIDs(filepath.Join(dir, "cgroup.procs"))
	return append(pids, own...)
}

// limitParent writes pids.max SessionPidsMax to the parent's pids
// directory, where the host gives stepbox one.
func limitParent(fsys cgroupFS, s *step.Step, g *Group) error {
	d, ok := g.dir(Pids)
	if !ok || !existsIn(fsys, filepath.Join(d.Path, "pids.max")) {
		s.Notes = append(s.Notes, "no pids controller reaches stepbox's parent: a fork bomb in a box is bounded only by the host's kernel.pid_max and the session's own cgroup")
		return nil
	}
	n := strconv.Itoa(SessionPidsMax)
	if err := writeFile(fsys, s, filepath.Join(d.Path, "pids.max"), n); err != nil {
		return err
	}
	s.Notes = append(s.Notes, fmt.Sprintf("pids.max %s on stepbox's parent: all the session's boxes together hold at most %s tasks, so a fork bomb in one stops there and the session, outside it, keeps the tasks it needs; `cgroup limit pids` sets the box's own limit under it", n, n))
	return nil
}
