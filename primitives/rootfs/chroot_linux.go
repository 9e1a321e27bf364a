package rootfs

import (
	"errors"
	"fmt"
	"os"
	"sort"

	"golang.org/x/sys/unix"

	"stepbox/primitives/step"
)

// Chroot changes the caller's root directory to newRoot and its cwd to
// the new "/", as chroot(1) does: the executor's own root, which its
// later commands inherit. Unlike PivotRoot it changes no
// mount: the host's root stays in the mount namespace, one ".." beyond
// the new "/", which a root process can climb back to (ChrootEscape).
func Chroot(k Kernel, newRoot string) (*step.Step, error) {
	st := &step.Step{Command: "chroot", Man: []string{"chroot(2)", "chroot(1)"}}
	if !isPlanning(k) {
		fi, err := os.Stat(k.Path(newRoot))
		if err != nil {
			return st, fmt.Errorf("chroot: %w", err)
		}
		if !fi.IsDir() {
			return st, fmt.Errorf("chroot: %s is not a directory", newRoot)
		}
	}
	if err := st.Do("chroot("+step.Quote(newRoot)+")", func() error { return k.Chroot(newRoot) }); err != nil {
		return st, fmt.Errorf("chroot: %w", err)
	}
	if err := st.Do(`chdir("/")`, func() error { return k.Chdir("/") }); err != nil {
		return st, fmt.Errorf("chroot: %w", err)
	}
	st.Tell("made "+newRoot+" the box's / — for path lookups only: the host's mounts are all still there",
		"will make "+newRoot+" the box's / — for path lookups only: the host's mounts will all stay there")
	st.Shell = []string{"chroot " + shellQuote(newRoot) + " /bin/sh"}
	st.Notes = []string{
		"chroot(2) changes one thing, where path lookups start; a process with CAP_SYS_CHROOT can chroot again and walk out with ..: the breakout lesson",
		"pivot_root changes the mount namespace's root instead, and detaches the old one, so there is nothing to walk back to",
	}
	st.Undo = "none from inside: a process cannot leave its chroot except by escaping it; new processes of the box start inside"
	return st, nil
}

// Escape is what ChrootEscape reached.
type Escape struct {
	Escaped bool     // "/" at the end is not the "/" at the start
	Hops    int      // chdir("..") calls that moved
	Root    []string // the names in "/" at the end
}

// escapeDir is the directory the escape chroots into; it is removed again.
const escapeDir = ".stepbox-escape"

// maxHops bounds the climb; no real path is this deep.
const maxHops = 256

// ChrootEscape runs the classic breakout: mkdir x; chroot("x") — which
// leaves the cwd outside the new root — chdir("..") until it stops
// moving, then chroot("."). A chroot falls to it; after pivot_root the
// climb stops at the box's own "/". It changes the calling process's
// root for good, so run it only in a throw-away child process (a re-exec),
// never on the box's thread. It needs CAP_SYS_CHROOT and a writable "/".
func ChrootEscape(k Kernel) (*step.Step, Escape, error) {
	st := &step.Step{Command: "chroot escape", Man: []string{"chroot(2)", "pivot_root(2)"}}
	var esc Escape
	fail := func(err error) (*step.Step, Escape, error) { return st, esc, fmt.Errorf("chroot escape: %w", err) }
	var start unix.Stat_t
	if err := unix.Stat(k.Path("/"), &start); err != nil {
		return fail(fmt.Errorf("stat /: %w", err))
	}
	top, err := k.Open("/", unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return fail(fmt.Errorf("open /: %w", err))
	}
	defer k.Close(top)
	if err := st.Do(`chdir("/")`, func() error { return k.Chdir("/") }); err != nil {
		return fail(err)
	}
	err = st.Do(fmt.Sprintf("mkdir(%s, 0700)", step.Quote(escapeDir)), func() error { return k.Mkdir(escapeDir, 0o700) })
	if err != nil && step.Errno(err) != unix.EEXIST {
		return fail(err)
	}
	// The dir cannot be removed while it is our root (rmdir(2), EBUSY);
	// remove it through the fd of the old "/" once we are out.
	rmdir := func() error {
		return st.Do(fmt.Sprintf("unlinkat(%d, %s, AT_REMOVEDIR)", top, step.Quote(escapeDir)), func() error {
			return k.Unlinkat(top, escapeDir, unix.AT_REMOVEDIR)
		})
	}
	fail = func(err error) (*step.Step, Escape, error) {
		if rerr := rmdir(); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return st, esc, fmt.Errorf("chroot escape: %w", err)
	}
	if err := st.Do("chroot("+step.Quote(escapeDir)+")", func() error { return k.Chroot(escapeDir) }); err != nil {
		return fail(err)
	}
	// The cwd is now outside the root, so ".." is never clamped at it
	// (path_resolution(7)): only the mount namespace's real root stops it.
	for esc.Hops < maxHops {
		var before, after unix.Stat_t
		if err := unix.Stat(k.Path("."), &before); err != nil {
			return fail(fmt.Errorf("stat .: %w", err))
		}
		if err := st.Do(`chdir("..")`, func() error { return k.Chdir("..") }); err != nil {
			return fail(err)
		}
		if err := unix.Stat(k.Path("."), &after); err != nil {
			return fail(fmt.Errorf("stat .: %w", err))
		}
		if before.Dev == after.Dev && before.Ino == after.Ino {
			break
		}
		esc.Hops++
	}
	if err := st.Do(`chroot(".")`, func() error { return k.Chroot(".") }); err != nil {
		return fail(err)
	}
	if err := st.Do(`chdir("/")`, func() error { return k.Chdir("/") }); err != nil {
		return fail(err)
	}
	if err := rmdir(); err != nil {
		return st, esc, fmt.Errorf("chroot escape: %w", err)
	}
	var end unix.Stat_t
	if err := unix.Stat(k.Path("/"), &end); err != nil {
		return st, esc, fmt.Errorf("chroot escape: stat /: %w", err)
	}
	esc.Escaped = end.Dev != start.Dev || end.Ino != start.Ino
	entries, err := os.ReadDir(k.Path("/"))
	if err != nil && !errors.Is(err, os.ErrPermission) {
		return st, esc, fmt.Errorf("chroot escape: %w", err)
	}
	for _, e := range entries {
		esc.Root = append(esc.Root, e.Name())
	}
	sort.Strings(esc.Root)
	if esc.Escaped {
		st.Summary = fmt.Sprintf("escaped: %d × chdir(\"..\") climbed out of the chroot to the mount namespace's real root", esc.Hops)
	} else {
		st.Summary = "no escape: \"..\" of the box's / is / itself, because pivot_root made it the mount namespace's root"
	}
	return st, esc, nil
}
