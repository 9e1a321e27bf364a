package repl

import (
	"os"
	"strconv"
	"strings"
	"testing"
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
	missing := "/stepbox-test-missing-" + strconv.Itoa(os.Getpid())
	out, code := runStepbox(t, t.TempDir(), "new b1\n", "--cgroup-parent", missing)
	if code != 2 {
		t.Errorf("--cgroup-parent %s: exit %d, want 2:\n%s", missing, code, out)
	}
	for _, want := range []string{"--cgroup-parent " + missing, "no such cgroup", "name a cgroup that exists in every hierarchy", "does not create it"} {
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
