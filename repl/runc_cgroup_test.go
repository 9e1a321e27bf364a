package repl

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"stepbox/lessons"
)

// undoRuncControllers puts every cgroup.subtree_control of the v2 tree
// back as it was when the test ends. runc's cgroupfs driver switches on
// every controller the kernel offers in each ancestor of its container's
// cgroup, the root included (libcontainer/cgroups/fs2 CreateCgroupPath):
// that is runc's doing, not stepbox's, and the test that runs runc undoes
// it, children first. On a v1 or hybrid host there is nothing to undo.
func undoRuncControllers(t *testing.T) {
	t.Helper()
	const root = "/sys/fs/cgroup"
	if _, err := os.Stat(filepath.Join(root, "cgroup.subtree_control")); err != nil {
		return
	}
	before := subtreeControls(root)
	t.Cleanup(func() {
		after := subtreeControls(root)
		dirs := make([]string, 0, len(after))
		for d := range after {
			dirs = append(dirs, d)
		}
		// Deepest first: a controller stays on while a child uses it.
		sort.Slice(dirs, func(i, j int) bool { return strings.Count(dirs[i], "/") > strings.Count(dirs[j], "/") })
		for _, d := range dirs {
			old, ok := before[d]
			if !ok {
				continue // a cgroup made during the test: its maker removes it
			}
			var off []string
			for c := range after[d] {
				if !old[c] {
					off = append(off, "-"+c)
				}
			}
			if len(off) == 0 {
				continue
			}
			if err := os.WriteFile(filepath.Join(d, "cgroup.subtree_control"), []byte(strings.Join(off, " ")), 0); err != nil {
				t.Errorf("undo runc's %s in %s: %v", strings.Join(off, " "), d, err)
			}
		}
	})
}

// runsRunc reports whether a lesson's solution runs runc (lesson 8).
func runsRunc(l *lessons.Lesson) bool {
	for _, st := range l.Steps {
		for _, line := range st.Solution {
			if strings.Contains(line, "runc ") {
				return true
			}
		}
	}
	return false
}

func subtreeControls(root string) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(p, "cgroup.subtree_control"))
		if err != nil {
			return nil
		}
		on := map[string]bool{}
		for _, c := range strings.Fields(string(b)) {
			on[c] = true
		}
		out[p] = on
		return nil
	})
	return out
}
