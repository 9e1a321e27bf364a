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

// ut30 F4: the words of a `!` line were checked, not what the host's sh
// makes of them. A box plants symlinks to a host file (0600) and to a
// scratch dir of the test's; each way a line reaches them without naming
// the link in a word — cd then a relative path, a variable, $(…) and
// backticks, a for loop, a pipe into xargs, recursive tools that follow
// links — is refused, the host file's text is never printed, and nothing
// is written to the scratch dir. Listing a box's directory, a command
// substitution that is only shown, and a plain file still work.
func TestHostCommandsRefuseWaysAroundTheWordCheck(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("SECRET-HOST-FILE\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	scratch := filepath.Join(dir, "escd")
	copied := filepath.Join(dir, "copied")
	for _, d := range []string{scratch, copied} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	plant := "ln -s " + secret + " /l && mkdir /d && ln -s " + secret + " /d/l && ln -s " + scratch + "/victim /w && " +
		"mkdir /etc2 && ln -s " + scratch + " /etc2/x && echo plain-box-file > /d/plain"
	refused := []string{
		"!cd $BOX_ROOT && echo VIA-CD > w",
		"!cd $BOX_UPPER && cp /etc/hostname etc2/x/copied2",
		"!cd $BOX_ROOT && cat l",
		"!cd $BOX_ROOT/d; cat l",
		"!(cd $BOX_ROOT/d && cat l)",
		"!cd /proc/$BOX_PID && cat root/l",
		"!pushd $BOX_ROOT; cat l",
		"!env -C $BOX_ROOT cat l",
		"!x=$BOX_ROOT; cat $x/l",
		"!B=/proc/$BOX_PID; cat $B/root/l",
		"!export x=$BOX_ROOT; cat $x/l",
		"!cat $(echo $BOX_ROOT)/l",
		"!cat `echo $BOX_ROOT`/l",
		"!for f in $BOX_ROOT/d; do cat $f/l; done",
		"!echo $BOX_ROOT/d | xargs -I{} cat {}/l",
		"!echo $BOX_ROOT | read x; cat $x/l",
		"!grep -R . $BOX_ROOT/d",
		"!cp -rL $BOX_ROOT/d " + copied,
		"!cp -a -t " + copied + " $BOX_ROOT/d",
		"!cp -a /etc/hostname $BOX_ROOT/etc2",
		"!cp $BOX_ROOT/d " + copied,
		"!find $BOX_ROOT/d -follow -type f -exec cat {} +",
		"!ls -L $BOX_ROOT/d",
		"!sh -c 'cd $BOX_ROOT; cat l'",
		"!tar -C $BOX_UPPER/etc2 -cf - x | tar -tvf -",
	}
	script := "new web\nunshare mnt pid\nmount overlay base\npivot_root\nexec sh -c '" + plant + "'\n"
	for _, l := range refused {
		script += "-" + l + "\n"
	}
	kept := filepath.Join(dir, "kept")
	script += "!cp -a $BOX_ROOT/d " + kept + "\n"
	script += "!ls $BOX_ROOT/d\n!echo listed: $(ls $BOX_UPPER/d)\n!cat $BOX_ROOT/d/plain\n!stat -c %F $BOX_ROOT/d\n!readlink /proc/$BOX_PID/root\n"
	out, code := runStepbox(t, filepath.Join(dir, "state"), script, "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if strings.Contains(out, "SECRET-HOST-FILE") {
		t.Errorf("a host command printed the host file through the box's symlink:\n%s", out)
	}
	for _, d := range []string{scratch, copied} {
		if ents, err := os.ReadDir(d); err != nil || len(ents) != 0 {
			t.Errorf("a host command wrote into %s through the box's symlink: %v %v\n%s", d, ents, err, out)
		}
	}
	if n := strings.Count(out, "error: !: "); n != len(refused) {
		t.Errorf("%d host commands refused, want %d:\n%s", n, len(refused), out)
	}
	// cp -a copies the box's directory, its link as a link.
	if target, err := os.Readlink(filepath.Join(kept, "l")); err != nil || target != secret {
		t.Errorf("cp -a of the box's directory did not copy its link as a link: %q %v\n%s", target, err, out)
	}
	flat := regexp.MustCompile(`\n {7}`).ReplaceAllString(out, " ")
	for _, want := range []string{
		"is a directory in box web's root ($BOX_ROOT), given to `env`, which may change into it",
		"given to `grep`", "and `cd` changes into it: the paths the line names after it are relative and not checked",
		"names a box (BOX_ROOT), and an assignment keeps the path in a variable",
		"the output of a command substitution becomes a path the check cannot see",
		"run the command inside the box (`exec cat /etc/motd`), or copy the box's files out with `export bundle`",
		"\nl\nplain\n", "listed: l plain\n", "\nplain-box-file\n", "\ndirectory\n", "!readlink /proc/$BOX_PID/root\n/\n",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
