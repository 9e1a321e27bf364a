package repl

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// A box plants symlinks to a host file (mode 0600, root's) where lessons
// 3 and 8 read from the host: /etc/motd through $BOX_ROOT, app/note in
// $BOX_UPPER, and one whose .. climbs out of the upper dir. Each `!`
// command that names them, directly, by a glob or in a shell's -c
// string, is refused naming `!`, the word, the symlink and the `exec`
// to type instead, and the host file's text is never printed; a plain
// file, and a relative symlink that stays in the box, still print.
func TestHostCommandsRefuseABoxsSymlinkLeadingOutOfIt(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("SECRET-HOST-FILE\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	plant := "rm /etc/motd && ln -s " + secret + " /etc/motd && mkdir -p /app && ln -s " + secret + " /app/note && " +
		"ln -s ../../../../../../../../.." + secret + " /app/climb && echo plain-box-file > /app/plain && ln -s plain /app/rel"
	out, code := runStepbox(t, filepath.Join(dir, "state"), "new web\nunshare mnt pid\nmount overlay base motd\npivot_root\n"+
		"exec sh -c '"+plant+"'\n"+
		"-!cat $BOX_ROOT/etc/motd\n"+
		"-!cat $BOX_UPPER/app/note\n"+
		"-!cat $BOX_UPPER/app/climb\n"+
		"-!cat $BOX_ROOT/etc/mot?\n"+
		"-!sh -c 'cat $BOX_ROOT/etc/motd'\n"+
		"-!sh -c \"cat $BOX_ROOT/etc/mot*\"\n"+
		"-!cat < /proc/$BOX_PID/root/app/note\n"+
		"!cat $BOX_ROOT/app/plain\n"+
		"!cat $BOX_UPPER/app/rel\n", "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if strings.Contains(out, "SECRET-HOST-FILE") {
		t.Errorf("a host command printed the host file through the box's symlink:\n%s", out)
	}
	if n := strings.Count(out, "\nplain-box-file\n"); n != 2 {
		t.Errorf("the box's plain file printed %d times, want 2 ($BOX_ROOT/app/plain, $BOX_UPPER/app/rel):\n%s", n, out)
	}
	// The messages as one line each: the terminal's width folds them.
	flat := regexp.MustCompile(`\n {7}`).ReplaceAllString(out, " ")
	for _, want := range []string{
		"/root/etc/motd is in box web's root ($BOX_ROOT), where /etc/motd is an absolute symlink, which the host's command resolves from the host's own / (-> " + secret + ")",
		"/upper/app/note is in box web's upper dir ($BOX_UPPER), where /app/note is an absolute symlink",
		"where /app/climb is a symlink whose .. climbs out of the box's tree on the host",
		"Run it inside the box, which resolves the link in its own root: `exec cat /etc/motd`",
		"`exec cat /app/note`",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "error: !: "); n != 7 {
		t.Errorf("%d host commands refused, want 7:\n%s", n, out)
	}
}
