package repl

import (
	"path/filepath"
	"strings"
	"testing"
)

// A mount the box made itself (a bind of a directory), which neither
// export can carry, is named by both, and a volume made with `mount
// bind` is carried, not named.
func TestExportsSayWhichMountsOfTheBoxTheyLeaveOut(t *testing.T) {
	sh, out := liveShell(t)
	dir := t.TempDir()
	run(t, sh, out, "new e", "unshare mnt pid", "mount overlay base", "mount bind "+dir+" /vol", "pivot_root",
		`exec sh -c 'mkdir -p /tmp/h && mount --bind /etc /tmp/h'`)
	for _, line := range []string{"export bundle " + filepath.Join(dir, "bundle"), "export script " + filepath.Join(dir, "e.sh")} {
		out.Reset()
		run(t, sh, out, line)
		said := strings.Join(strings.Fields(out.String()), " ")
		if !strings.Contains(said, "not carry 1 mount the box made itself: /tmp/h (") || strings.Contains(said, "/vol (") {
			t.Errorf("%s does not say it leaves out the box's own bind mount at /tmp/h (and only it):\n%s", line, out)
		}
	}
}
