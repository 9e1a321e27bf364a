package repl

import (
	"path/filepath"
	"strings"
	"testing"
)

// A box that nests a directory deeper than the walks go, and one whose
// host path passes PATH_MAX, does not take `stack`, `status` or `export
// bundle` from the learner: each answers, and says what it left out.
func TestDeepDirectoryInABoxLeavesStackStatusAndExportWorking(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	long := strings.Repeat("d", 60)
	script := "new d\nunshare mnt pid\nmount overlay base\npivot_root\n" +
		// 300 levels: deeper than the walks' limit.
		"exec sh -c 'cd /tmp && i=0 && while [ $i -lt 300 ]; do mkdir d && cd d || exit 1; i=$((i+1)); done'\n" +
		// 66 levels of 60 characters: 4,031 in the box, past PATH_MAX on the host.
		"exec sh -c 'cd /srv 2>/dev/null || { mkdir /srv && cd /srv; }; i=0; while [ $i -lt 66 ]; do mkdir " + long + " && cd " + long + " || exit 1; i=$((i+1)); done'\n" +
		"stack\nstatus\nexport bundle " + filepath.Join(dir, "bundle") + "\n"
	out, code := runStepbox(t, filepath.Join(dir, "state"), script, "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{
		"not all of upper was read: too deep",
		"unreadable",
		"bundle of box d written to",
		"rootfs is not all of the box's root: too deep",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "not all of upper was read"); n < 2 {
		t.Errorf("stack and status do not both say what they left out (%d):\n%s", n, out)
	}
}
