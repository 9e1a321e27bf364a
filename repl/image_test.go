package repl

import (
	"path/filepath"
	"strings"
	"testing"
)

// The demo image, loaded from the archive fixtures build, stacked by
// `mount overlay IMAGE` in a real box: its whiteout hides base's
// /etc/issue, and exec runs with its Env, WorkingDir and Cmd.
func TestMountOverlayImageRunsItsCmdInItsWorkingDir(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	archive := filepath.Join(dir, "demo.tar")
	script := "image demo " + archive + "\nimage load " + archive + "\nimages\nimage show stepbox/demo\n" +
		"new a\nunshare mnt pid uts\nmount overlay stepbox/demo\npivot_root\n" +
		"exec\nexec cat /etc/motd\n-exec cat /etc/issue\nexec sh -c 'echo env=$GREETING'\nstack\n" +
		"-image rm stepbox/demo\nrm a\nimage rm stepbox/demo\nimages\n"
	out, code := runStepbox(t, filepath.Join(dir, "state"), script, "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{
		"image stepbox/demo:latest (linux/",
		"hello from /app as uid 0",
		"welcome to the stepbox demo image",
		"cat: can't open '/etc/issue': No such file or directory",
		"env=hello",
		"- /etc/issue",
		"demo.1",
		"may still be mounted",
		"image stepbox/demo:latest removed, and its layers demo.0, demo.1",
		"no images yet",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
