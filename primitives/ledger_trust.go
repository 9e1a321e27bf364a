package primitives

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"stepbox/primitives/cgroups"
)

// A ledger line is checked before teardown acts on it: the state dir is
// the caller's own (statedir.go), but a line may still have been written
// by a box that reached the state dir, or edited by hand. Each kind of
// resource can only be what stepbox itself would have recorded.

// ledgerRefused is a ledger line teardown will not act on: one stepbox
// would never have written (planted by a box that could write the
// ledger, or edited by hand). It is said and never acted on; it does not
// keep the ledger's directory for a next cleanup, which would refuse it
// again, for ever (ut27 F9).
type ledgerRefused struct{ error }

func (r ledgerRefused) Unwrap() error { return r.error }

func refusal(format string, a ...any) error {
	return ledgerRefused{fmt.Errorf(format, a...)}
}

// refusalsOf splits err, joined or not, into the refusals it holds, as
// lines to say, and the rest: the errors of what teardown tried to undo.
func refusalsOf(err error) (said []string, rest error) {
	if err == nil {
		return nil, nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var errs []error
		for _, e := range j.Unwrap() {
			s, r := refusalsOf(e)
			said, errs = append(said, s...), append(errs, r)
		}
		return said, errors.Join(errs...)
	}
	var r ledgerRefused
	if errors.As(err, &r) {
		if n, ok := r.error.(TeardownNotes); ok {
			return n, nil // said already
		}
		return []string{"ignored: " + err.Error()}, nil
	}
	return nil, err
}

// ledgerDirInside refuses a ResDir path that does not lie inside the
// ledger's own directory once `..` and symlinks are resolved: a box's
// directories (its overlay's upper, work and merged dirs) are all there.
func ledgerDirInside(path, ledgerDir string) error {
	if !filepath.IsAbs(path) {
		return refusal("ledger: refusing to remove %q: not an absolute path", path)
	}
	own, err := filepath.EvalSymlinks(ledgerDir)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	// The directory itself may be gone, or a symlink (removed as a link);
	// its parent must resolve inside the ledger's directory (most often
	// it is that directory, resolved already).
	parent := own
	if dir := filepath.Dir(filepath.Clean(path)); dir != filepath.Clean(ledgerDir) {
		parent, err = filepath.EvalSymlinks(dir)
	}
	if os.IsNotExist(err) {
		return nil // nothing there to remove
	}
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	if parent != own && !strings.HasPrefix(parent, own+"/") {
		return refusal("ledger: refusing to remove %s: it resolves outside the box's state directory %s", path, ledgerDir)
	}
	return nil
}

// ledgerCgroupOwn refuses a cgroup unless every directory of it is, once
// `..` and symlinks are resolved, the session's parent cgroup
// (stepbox-<session PID>) or a child of it, on a cgroup filesystem under
// the cgroup root; and unless every cgroup.subtree_control it would
// switch back off is above one of those. A path is judged as teardown
// opens it, cleaned (filepath.Join cleans): `stepbox-N/../x` names x even
// where no stepbox-N exists, and the kernel would then refuse the path as
// written (ut25 F3).
func ledgerCgroupOwn(g cgroups.Group, session string) error {
	pidS, _, _ := strings.Cut(session, "-")
	pid, err := strconv.Atoi(pidS)
	if err != nil || pid <= 0 || sessionStart(session) == 0 {
		return refusal("ledger: refusing cgroup %s: the ledger's session %q is not one stepbox names", g.Name, session)
	}
	// The session's own parent, named by its whole ID: a PID alone is
	// another PID namespace's session's too (ut30 F7).
	parent := cgroups.ParentName(session)
	root, err := filepath.EvalSymlinks(cgroups.DefaultRoot)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	var own []string
	for _, d := range append(slices.Clone(g.Dirs), g.Track...) {
		real, err := filepath.EvalSymlinks(filepath.Clean(d.Path))
		gone := os.IsNotExist(err)
		if gone {
			// Nothing to remove there; it still places, by its parent,
			// the controllers switched on above it.
			up, perr := filepath.EvalSymlinks(filepath.Dir(filepath.Clean(d.Path)))
			if perr != nil {
				continue
			}
			real, err = filepath.Join(up, filepath.Base(d.Path)), nil
		}
		if err != nil {
			return fmt.Errorf("ledger: cgroup %s: %w", d.Path, err)
		}
		inParent := filepath.Base(real) == parent || filepath.Base(filepath.Dir(real)) == parent
		if !strings.HasPrefix(real, root+"/") || !inParent || !gone && !cgroups.IsCgroupFS(real) {
			if gone {
				continue
			}
			return refusal("ledger: refusing to remove cgroup %s: it resolves to %s, which is not %s or a cgroup under it", d.Path, real, parent)
		}
		own = append(own, real)
	}
	for _, e := range g.Enabled {
		real, err := filepath.EvalSymlinks(filepath.Clean(e.Path))
		if os.IsNotExist(err) {
			continue // nothing there to switch off
		}
		if err != nil {
			return fmt.Errorf("ledger: cgroup %s: %w", e.Path, err)
		}
		above := false
		for _, o := range own {
			above = above || strings.HasPrefix(o, real+"/")
		}
		if !above || !strings.HasPrefix(real+"/", root+"/") {
			return refusal("ledger: refusing to switch controllers off in %s: it is not above the session's parent cgroup %s", e.Path, parent)
		}
	}
	return nil
}

// ledgerProcessOwn says whether to end a ResProcess: only while the PID
// is still the process recorded (its start time, which a ledger must
// carry) and that process carries the session's markers. A PID reused by
// anyone else's process, or a line naming a process stepbox never
// started, is refused.
func ledgerProcessOwn(p pidStart, session string) (bool, error) {
	if p.start == 0 {
		return false, refusal("ledger: refusing to end PID %d: no start time recorded, so it cannot be told from a later process with the same PID", p.pid)
	}
	proc, err := procfs.NewProc(p.pid)
	if err != nil {
		return false, nil // gone: nothing to end
	}
	st, err := proc.Stat()
	if err != nil || st.Starttime != p.start {
		return false, nil // gone, or the PID is another process's now
	}
	if st.State == "Z" {
		return true, nil // exited: its environment is gone with its memory
	}
	if s, _, ns := markersOf(proc); s != session || ns != "" && ns != ownPIDNS {
		if exits(p.pid, 2*time.Second) {
			// It was exiting (after a crash, the kernel's SIGKILL of
			// PR_SET_PDEATHSIG): its memory, and its environment with it,
			// goes before it becomes a zombie.
			return false, nil
		}
		return false, refusal("ledger: refusing to end PID %d: it does not carry session %s's markers (%s)", p.pid, session, envSession)
	}
	return true, nil
}

// exits reports whether process pid exits within d (pidfd_open(2) + poll:
// readable once it has).
func exits(pid int, d time.Duration) bool {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return true
	}
	defer unix.Close(fd)
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(time.Until(deadline)/time.Millisecond)+1)
		if n > 0 {
			return true
		}
		if err != nil && err != unix.EINTR {
			return false
		}
	}
	return false
}
