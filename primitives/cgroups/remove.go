package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"stepbox/primitives/step"
)

// busyRetries bounds the wait for a cgroup to empty: a process that has
// just exited keeps its cgroup populated (rmdir: EBUSY) until the kernel
// finishes tearing the task down, usually within milliseconds.
var busyRetries = []time.Duration{
	5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond,
	80 * time.Millisecond, 160 * time.Millisecond, 320 * time.Millisecond,
}

// removeTree removes dir and every cgroup below it, children first (a
// cgroup with children cannot be removed: EBUSY). A dir already gone is
// not an error, so teardown can run twice.
func removeTree(fsys cgroupFS, s *step.Step, dir string) error {
	if _, real := fsys.(kernelFS); real {
		// Most cgroups teardown removes are empty leaves, their processes
		// gone: one rmdir(2) does, where the kernel refuses (EBUSY) a
		// cgroup that still has children or processes. Only then are
		// they looked for, below.
		switch err := fsys.Rmdir(dir); err {
		case nil:
			s.Record(rmdirCall(dir), nil)
			shell(s, "rmdir "+dir)
			return nil
		case unix.ENOENT:
			return nil
		}
	}
	if !exists(dir) {
		return nil
	}
	children, err := subdirs(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range children {
		errs = append(errs, removeTree(fsys, s, filepath.Join(dir, c)))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// A process the ledger and the markers missed (one that cleared its
	// environment, or was forked while they were read) keeps the cgroup
	// populated: end it (track.go).
	if _, err := killTree(fsys, s, dir); err != nil {
		return err
	}
	for _, wait := range busyRetries {
		err = rmdir(fsys, s, dir)
		if step.Errno(err) == unix.ENOENT {
			return nil // removed meanwhile: by its own session, or another sweep
		}
		if step.Errno(err) != unix.EBUSY {
			return err
		}
		time.Sleep(wait)
	}
	if err = rmdir(fsys, s, dir); step.Errno(err) == unix.EBUSY {
		if pids, perr := readPIDs(filepath.Join(dir, "cgroup.procs")); perr == nil && len(pids) > 0 {
			return fmt.Errorf("%w: processes %s are still in it; end them or move them out first", err, strings.TrimPrefix(pidList(pids), "PID "))
		}
	}
	return err
}

// Foreign is a cgroup below stepbox's parent that stepbox did not make:
// no ledger of the session records it (one a refused `new` found there
// already is recorded as not made). Whoever planted it, a box with the
// cgroup tree writable or someone on the host, what is in it is not
// stepbox's to end, nor the cgroup its to remove (ut32 F1).
type Foreign struct {
	Path string // its directory
	PIDs []int  // the processes in it and below it, as teardown read them
}

// KillParent ends the processes of stepbox's parent g that are the
// boxes': in g itself and in every cgroup below it that made says
// stepbox made (the ledgers' record), with what is below those. The rest
// (Foreign) is left alone. It returns the processes it saw end and those
// of the made cgroups still there after.
func KillParent(g *Group, made func(dir string) bool) (ended, survivors []int, err error) {
	var errs []error
	var mine []string // the made cgroups, in every hierarchy
	for _, d := range g.all() {
		kids, err := subdirs(d.Path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, k := range kids {
			if p := filepath.Join(d.Path, k); made(p) {
				mine = append(mine, p)
			}
		}
	}
	// A task the v1 freezer holds acts on no signal, and the freezer's
	// copy of a cgroup comes after the cgroup2 one whose cgroup.kill it
	// must obey: thaw all of them first, as Kill does, or each hierarchy
	// before the freezer waits out killStall and reports the frozen
	// processes as survivors.
	for _, p := range mine {
		_, err := thaw(kernelFS{}, nil, p)
		errs = append(errs, err)
	}
	for _, p := range mine {
		e, err := killTree(kernelFS{}, nil, p)
		ended, errs = append(ended, e...), append(errs, err)
	}
	for _, d := range g.all() {
		if exists(d.Path) {
			ended = append(ended, killOwn(d.Path)...)
		}
	}
	// What is left, once every hierarchy has had its kill.
	for _, p := range mine {
		survivors = append(survivors, treePIDs(p)...)
	}
	for _, d := range g.all() {
		own, _ := readPIDs(filepath.Join(d.Path, "cgroup.procs"))
		survivors = append(survivors, own...)
	}
	return sortedSet(ended), sortedSet(survivors), errors.Join(errs...)
}

// RemoveParent removes stepbox's parent g, in no systemd scope: first the
// cgroups below it that made says stepbox made, ending what is still in
// them, then g itself. A cgroup below it that stepbox did not make is
// left, with its processes, and returned to be named; g stays with it (a
// cgroup with a child cannot be removed), as do the controllers switched
// on above g. It returns the processes it saw end.
func RemoveParent(g *Group, made func(dir string) bool) (ended []int, foreign []Foreign, err error) {
	if g == nil {
		return nil, nil, ErrNoGroup
	}
	if g.Scope != "" {
		return nil, nil, fmt.Errorf("cgroup rm %s: it is in systemd scope %s: remove it through its hierarchy", g.Name, g.Scope)
	}
	s := &step.Step{Command: "cgroup rm " + g.Name}
	var errs []error
	for _, d := range g.all() {
		kids, err := subdirs(d.Path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		left := false
		for _, k := range kids {
			p := filepath.Join(d.Path, k)
			if !made(p) {
				// An empty one goes, by rmdir(2) alone: that ends nothing,
				// and left it would keep stepbox's parent for ever.
				if !rmdirEmpty(p) {
					foreign, left = append(foreign, Foreign{Path: p, PIDs: sortedSet(treePIDs(p))}), true
				}
				continue
			}
			e, err := killTree(kernelFS{}, s, p)
			ended, errs = append(ended, e...), append(errs, err, removeTree(kernelFS{}, s, p))
		}
		if left {
			continue
		}
		ended = append(ended, killOwn(d.Path)...)
		errs = append(errs, removeTree(kernelFS{}, s, d.Path))
	}
	if len(foreign) == 0 {
		errs = append(errs, (&base{fs: kernelFS{}}).disableEnabled(s, g)...)
	}
	return sortedSet(ended), foreign, errors.Join(errs...)
}

// ForeignIn lists the cgroups below stepbox's parent g that made says
// stepbox did not make and that hold a process: what teardown must leave.
func ForeignIn(g *Group, made func(dir string) bool) []Foreign {
	var foreign []Foreign
	for _, d := range g.all() {
		kids, _ := subdirs(d.Path)
		for _, k := range kids {
			if p := filepath.Join(d.Path, k); !made(p) && populated(p) {
				foreign = append(foreign, Foreign{Path: p, PIDs: sortedSet(treePIDs(p))})
			}
		}
	}
	return foreign
}

// rmdirEmpty removes dir and the cgroups below it, deepest first, by
// rmdir(2) alone, which the kernel refuses for a cgroup a process is in
// (EBUSY): it ends nothing. It reports whether dir is gone.
func rmdirEmpty(dir string) bool {
	kids, _ := subdirs(dir)
	for _, k := range kids {
		rmdirEmpty(filepath.Join(dir, k))
	}
	err := unix.Rmdir(dir)
	return err == nil || err == unix.ENOENT
}

// Populated reports whether any process is in dir or a cgroup below it.
func Populated(dir string) bool { return populated(dir) }

// populated reports whether any process is in dir or a cgroup below it.
func populated(dir string) bool {
	found := false
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || found || !d.IsDir() {
			return nil
		}
		if pids, err := readPIDs(filepath.Join(p, "cgroup.procs")); err == nil && len(pids) > 0 {
			found = true
			return filepath.SkipAll
		}
		return nil
	})
	return found
}

// disable switches off the controllers e.Controllers in e.Path's
// cgroup.subtree_control, undoing what NewParent switched on. Another
// cgroup still using them keeps them on (EBUSY): that is left alone.
func disable(fsys cgroupFS, s *step.Step, e Dir) error {
	var words []string
	for _, c := range e.Controllers {
		words = append(words, "-"+c)
	}
	err := writeFile(fsys, s, filepath.Join(e.Path, "cgroup.subtree_control"), strings.Join(words, " "))
	if step.Errno(err) == unix.EBUSY {
		s.Notes = append(s.Notes, fmt.Sprintf("left %s on in %s: other cgroups there still use them", strings.Join(e.Controllers, " "), e.Path))
		return nil
	}
	return err
}

// Sweep removes the parent cgroups (stepbox-<PID>) anywhere under root
// whose session is no longer alive, with everything below them. It is
// what `stepbox cleanup` and start-up run after a crash. mayLive says
// whether the session PID may still run, and, when that is not plain
// from the PID (another PID namespace's session), why it is kept.
func Sweep(root string, mayLive func(sessionPID int) (alive bool, why string)) (*step.Step, error) {
	s := &step.Step{
		Command: "cleanup",
		Summary: "removed the cgroups of stepbox sessions that are gone",
		Man:     []string{"cgroups(7)", "rmdir(2)"},
	}
	var errs []error
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil // removed under us, by the kernel or another sweep
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		pid, ok := sessionOf(d.Name())
		if !ok {
			return nil
		}
		alive, why := mayLive(pid)
		switch {
		case alive:
			if why != "" {
				s.Notes = append(s.Notes, fmt.Sprintf("left %s: %s", p, why))
			}
		case populated(p):
			// Processes still in it are not a dead session's: the PID may
			// be one of another PID namespace (stepbox in a container).
			s.Notes = append(s.Notes, fmt.Sprintf("left %s: processes are still in it, so it is not a gone session's", p))
		default:
			errs = append(errs, removeTree(kernelFS{}, s, p))
		}
		return filepath.SkipDir
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("sweep %s: %w", root, err))
	}
	return s, errors.Join(errs...)
}
