package repl

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/procfs"

	"stepbox/primitives/cgroups"
)

// ut32 F5: a --cgroup-parent naming a cgroup that does not exist was
// taken, and every box then ran without a tracking cgroup or the
// session's task cap, said only by `cgroup new`. stepbox makes its own
// cgroup under PATH, never PATH itself: it refuses such a PATH at start,
// naming the flag, the path, where it is missing and what is allowed. One
// that exists in every hierarchy (the root) still gives tracked boxes.
func TestCgroupParentThatDoesNotExistIsRefusedAtStart(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	missing := "/sbtest-missing-" + strconv.Itoa(os.Getpid())
	out, code := runStepbox(t, t.TempDir(), "new b1\n", "--cgroup-parent", missing)
	if code != 2 {
		t.Errorf("--cgroup-parent %s: exit %d, want 2:\n%s", missing, code, out)
	}
	for _, want := range []string{"--cgroup-parent " + strconv.Quote(missing), "no such cgroup", "name a cgroup that exists in every hierarchy", "does not create it"} {
		if !strings.Contains(out, want) {
			t.Errorf("--cgroup-parent %s: the output lacks %q:\n%s", missing, want, out)
		}
	}
	if strings.Contains(out, "✓ box b1") {
		t.Errorf("--cgroup-parent %s: a box was made:\n%s", missing, out)
	}
	// v1's pids line or v2's 0:: line, whichever the host has.
	out, code = runStepbox(t, t.TempDir(), "new b1\nexec grep -E '^0::|:pids:' /proc/self/cgroup\n", "--cgroup-parent", "/")
	if code != 0 || !strings.Contains(out, ":/stepbox-") || !strings.Contains(out, "/b1.track") {
		t.Errorf("--cgroup-parent /: exit %d, want 0 and the box in its tracking cgroup under /stepbox-…:\n%s", code, out)
	}
}

// ut32 F5: a --cgroup-parent inside another session's parent cgroup
// (stepbox-*) put the boxes in a tree that session's teardown kills and
// removes; on a hybrid host one missing from the cgroup2 tree that tracks
// the boxes (or from one v1 hierarchy) left them untracked there. Each is
// refused at start, exit 2, naming the flag, the value and the rule; so
// is a path stepbox would show other than given (//x) or that it cannot
// print (ESC), escaped.
func TestCgroupParentInAnotherSessionOrMissingFromAHierarchyIsRefusedAtStart(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	refused := func(value string, wants ...string) {
		t.Helper()
		out, code := runStepbox(t, t.TempDir(), "new b1\n", "--cgroup-parent", value)
		if code != 2 {
			t.Errorf("--cgroup-parent %q: exit %d, want 2:\n%s", value, code, out)
		}
		for _, want := range append([]string{"--cgroup-parent", strconv.Quote(value)}, wants...) {
			if !strings.Contains(out, want) {
				t.Errorf("--cgroup-parent %q: the output lacks %q:\n%s", value, want, out)
			}
		}
		if strings.Contains(out, "✓ box b1") || strings.Contains(out, "\x1b[31mred") {
			t.Errorf("--cgroup-parent %q: a box was made or the value printed raw:\n%s", value, out)
		}
	}
	for _, v := range []string{"/stepbox-27642-3027822", "/stepbox-27642-3027822/a1", "/mine/stepbox-1/b1.track"} {
		refused(v, "stepbox session's cgroup", "outside every stepbox session's cgroup")
	}
	refused("//x", "an empty component")
	refused("/x/", "an empty component")
	refused("/x\x1b[31mred", "not printable")

	proc, err := procfs.NewFS(procfs.DefaultMountPoint)
	if err != nil {
		t.Fatal(err)
	}
	h, err := cgroups.Open(cgroups.DefaultRoot, proc, os.Getpid())
	if err != nil {
		t.Skipf("no cgroups to place a parent in: %v", err)
	}
	// The hierarchies stepbox puts a box's cgroups in, as Place lists
	// them for the root: every one, the tracking tree included.
	pl, err := h.Place("/")
	if err != nil {
		t.Fatal(err)
	}
	tops := append(slices.Clone(pl.Dirs), pl.Track...)
	name := "/sbtest-f5-" + strconv.Itoa(os.Getpid())
	// mkdir makes cgroup p in tops, removed at the end of the test (or
	// by undo, children first).
	mkdir := func(p string, tops []cgroups.Dir) (undo func()) {
		var made []string
		for _, d := range tops {
			dir := filepath.Join(d.Path, p)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
					t.Error(err)
				}
			})
			made = append(made, dir)
		}
		return func() {
			for _, dir := range made {
				if err := os.Remove(dir); err != nil {
					t.Error(err)
				}
			}
		}
	}
	// One named as a session's parent that exists everywhere, as another
	// session's would.
	undoTop := mkdir(name, tops)
	undoSession := mkdir(name+"/stepbox-1-2", tops)
	refused(name+"/stepbox-1-2", "stepbox session's cgroup", "outside every stepbox session's cgroup")
	undoSession()
	undoTop()
	if len(tops) < 2 {
		// Pure cgroup v2 (the 6.1 VM): the part above is all there is; a
		// skip would fail the suite under STEPBOX_MUST_WORK=1.
		t.Logf("one hierarchy (%v): no parent can be missing from only some", tops)
		return
	}
	for i, skip := range tops {
		where := skip.Hierarchy
		if i >= len(pl.Dirs) {
			where = "cgroup2 tree"
		}
		undo := mkdir(name, slices.Delete(slices.Clone(tops), i, i+1))
		refused(name, "no such cgroup", where, "every hierarchy stepbox uses")
		undo()
	}
}

// ut33 F5: a --cgroup-parent naming a control file that every hierarchy
// has (/cgroup.procs, /tasks, /cgroup.clone_children) passed for a
// cgroup: every box ran untracked in the root cgroups, and the ledger
// named a cgroup under a file that no teardown or cleanup could clear.
// It is refused at start, exit 2, naming the flag, the value and what is
// allowed.
func TestCgroupParentThatIsAFileIsRefusedAtStart(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	for _, v := range []string{"/cgroup.procs", "/tasks", "/cgroup.clone_children"} {
		out, code := runStepbox(t, t.TempDir(), "new b1\n", "--cgroup-parent", v)
		if code != 2 {
			t.Errorf("--cgroup-parent %s: exit %d, want 2:\n%s", v, code, out)
		}
		for _, want := range []string{"--cgroup-parent " + strconv.Quote(v), "a directory (not a control file such as cgroup.procs)"} {
			if !strings.Contains(out, want) {
				t.Errorf("--cgroup-parent %s: the output lacks %q:\n%s", v, want, out)
			}
		}
		// v1 says which hierarchy; v2 (cgroup.controllers under a file)
		// "not a directory", where the name is in that hierarchy.
		if !strings.Contains(out, "is a file, not a cgroup's directory") && !strings.Contains(out, "not a directory") && !strings.Contains(out, "no such cgroup") {
			t.Errorf("--cgroup-parent %s: the output does not say it is no cgroup:\n%s", v, out)
		}
		if strings.Contains(out, "✓ box b1") {
			t.Errorf("--cgroup-parent %s: a box was made:\n%s", v, out)
		}
	}
}
