package repl

import (
	"os"
	"os/exec"
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
		// ut35 G6: cp that links instead of copying dereferences the
		// box's link and hard-links the host file (or makes a symlink
		// to the box's path); each spelling, abbreviated, quoted, made
		// by the shell, is refused.
		"!cp -rl $BOX_ROOT/d " + copied,
		"!cp -Rl $BOX_ROOT/d " + copied,
		"!cp -r --link $BOX_ROOT/d " + copied,
		"!cp -al $BOX_ROOT/d " + copied,
		"!cp -a -l $BOX_ROOT/d " + copied,
		"!cp -rs $BOX_ROOT/d " + copied,
		"!cp -r --symbolic-link $BOX_ROOT/d " + copied,
		"!cp -r --li $BOX_ROOT/d " + copied,
		"!cp -r --sym $BOX_ROOT/d " + copied,
		"!cp -r '-l' $BOX_ROOT/d " + copied,
		"!cp -r $(echo -l) $BOX_ROOT/d " + copied,
		"!cp -r --deref $BOX_ROOT/d " + copied,
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
	keptR := filepath.Join(dir, "keptR")
	script += "!cp -r $BOX_ROOT/d " + keptR + "\n"
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
	if target, err := os.Readlink(filepath.Join(keptR, "l")); err != nil || target != secret {
		t.Errorf("cp -r of the box's directory did not copy its link as a link: %q %v\n%s", target, err, out)
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

// boxTempDir is the test's temp dir, which a box's mapped root (a
// `--user` box's host uid) may search down to the state dir and the
// scratch dirs in it, as stepbox's own directories are (o+x).
func boxTempDir(t *testing.T) string {
	t.Helper()
	dir := searchableTempDir(t)
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	return dir
}

// scratchDir makes a dir of the test's with one file, keep, which a
// box's trick would show the learner's `!` commands.
func scratchDir(t *testing.T, dir, name string) string {
	t.Helper()
	d := filepath.Join(dir, name)
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "keep"), []byte("SCRATCH-FILE\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

// onlyKeep fails the test if d holds anything but its keep file.
func onlyKeep(t *testing.T, d, out string) {
	t.Helper()
	ents, err := os.ReadDir(d)
	if err != nil || len(ents) != 1 || ents[0].Name() != "keep" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("a host command wrote into %s through the box's trick: %v %v\n%s", d, names, err, out)
	}
}

// swapUpper is a box command that renames its upper dir and puts a
// symlink to dir in its place, as box code that runs before pivot_root
// (or broke out of chroot) can where it may write the dir above it; it
// finds the path in its mountinfo, as the box would.
func swapUpper(dir string) string {
	return `exec sh -c 'D=$(grep -o "upperdir=[^,]*" /proc/self/mountinfo | head -1 | cut -d= -f2); cd $(dirname $D) && mv upper u.x && ln -s ` + dir + ` upper'`
}

// ut31 F1 (a): `mount overlay` gave a `--user` box's root its overlay
// dir, so box code run before pivot_root could swap the upper dir for a
// symlink to a host dir, which the learner's checked `!cat $BOX_UPPER/…`
// and `!touch`/`!echo >` then read and wrote as root. A `--user` box
// can no longer swap it; a box that can (a root box, host root before
// pivot_root) gets every `!` word under the swapped $BOX_UPPER refused,
// and `stack` says the upper dir is not as stepbox made it instead of
// showing the host dir as the box's changes. Nothing is written to the
// scratch dir the link leads to.
func TestHostCommandsRefuseASwappedUpperDir(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := boxTempDir(t)
	userScratch, rootScratch := scratchDir(t, dir, "victim-user"), scratchDir(t, dir, "victim-root")
	uses := "-!cat $BOX_UPPER/keep\n-!touch $BOX_UPPER/planted\n-!echo hi > $BOX_UPPER/planted2\n-!cat $BOX_DIR/overlay/upper/keep\n"

	out, code := runStepbox(t, filepath.Join(dir, "state-user"), "new u --user\nunshare all\nmount overlay base\n-"+swapUpper(userScratch)+"\n"+uses+"pivot_root\n", "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if !strings.Contains(out, "mv: cannot move 'upper' to 'u.x': Permission denied") {
		t.Errorf("the --user box's swap of its upper dir was not refused by the dir's owner and mode:\n%s", out)
	}
	if strings.Contains(out, "SCRATCH-FILE") {
		t.Errorf("a host command read the scratch dir through the --user box's swapped upper dir:\n%s", out)
	}
	onlyKeep(t, userScratch, out)

	out, code = runStepbox(t, filepath.Join(dir, "state-root"), "new r\nunshare mnt pid\nmount overlay base\n"+swapUpper(rootScratch)+"\n"+uses+"-stack\n", "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if strings.Contains(out, "SCRATCH-FILE") {
		t.Errorf("a host command read the scratch dir through the swapped upper dir:\n%s", out)
	}
	onlyKeep(t, rootScratch, out)
	if n := strings.Count(out, "error: !: "); n != 4 {
		t.Errorf("%d host commands refused, want 4:\n%s", n, out)
	}
	flat := regexp.MustCompile(`\n {7}`).ReplaceAllString(out, " ")
	for _, want := range []string{
		"/upper/keep is in box r's upper dir ($BOX_UPPER), and the way to ",
		"overlay/upper is a symlink (-> " + rootScratch + "), not the directory stepbox made.",
		"Run it inside the box, which sees its own files as the box does: `exec touch /planted`",
		"error: stack: box r's upper dir is not as stepbox made it, so its changes are not shown:",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// ut31 F1 (b): a bind mount of a host dir that a box made in its own
// mount namespace before pivot_root stays after it, and the learner's
// `!touch $BOX_ROOT/mnt/x` wrote into the host dir. A mount point no
// step of stepbox's made refuses the word, before pivot_root and after;
// the mounts stepbox made (a tmpfs, a volume, dev, proc) still take the
// learner's host commands, and nothing is written to the scratch dir.
func TestHostCommandsRefuseAMountTheBoxMade(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := boxTempDir(t)
	scratch, vol := scratchDir(t, dir, "victim"), scratchDir(t, dir, "vol")
	bind := `exec sh -c 'M=$(grep " - overlay " /proc/self/mountinfo | cut -d" " -f5 | head -1); mkdir -p $M/mnt && mount --bind ` + scratch + ` $M/mnt'`
	script := "new u --user\nunshare all\nmount overlay base\n" + bind + "\n" +
		"-!touch $BOX_ROOT/mnt/pre\n-!cat $BOX_ROOT/mnt/keep\n" +
		"mount tmpfs /tmp\nmount bind " + vol + " /vol\nmount dev /dev\npivot_root\n" +
		"-!touch $BOX_ROOT/mnt/post\n-!echo hi > $BOX_ROOT/mnt/post2\n" +
		"exec sh -c 'echo box-tmp-file > /tmp/ok'\n!cat $BOX_ROOT/tmp/ok\n!cat $BOX_ROOT/vol/keep\n!ls $BOX_ROOT/dev/null $BOX_ROOT/proc/1/status\n"
	out, code := runStepbox(t, filepath.Join(dir, "state"), script, "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	onlyKeep(t, scratch, out)
	onlyKeep(t, vol, out)
	if n := strings.Count(out, "error: !: "); n != 4 {
		t.Errorf("%d host commands refused, want 4:\n%s", n, out)
	}
	if n := strings.Count(out, "\nSCRATCH-FILE\n"); n != 1 {
		t.Errorf("the volume's file printed %d times, want once (the box's bind: never):\n%s", n, out)
	}
	flat := regexp.MustCompile(`\n {7}`).ReplaceAllString(out, " ")
	for _, want := range []string{
		"/merged/mnt/pre is in box u's root ($BOX_ROOT), where /mnt is a mount point stepbox did not make (a ",
		"/victim] that no step of stepbox's made): the box can bind a host directory into its tree",
		"/root/mnt/post is in box u's root ($BOX_ROOT), where /mnt is a mount point stepbox did not make",
		"`exec touch /mnt/post`",
		"\nbox-tmp-file\n", "/root/dev/null\n",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// ut33 F4: `export bundle` copies the box's symlinks into rootfs/ as
// they are, and lesson 8 reads that copy from the host (`!ls
// $BOX_DIR/bundle/rootfs/app`): a box's /app -> a host dir and /leak ->
// a host file (0600) had `!` list and print the host's. Each bundle
// written in the session is a box tree for `!`, the one in $BOX_DIR and
// one elsewhere, which stays one after its box is removed; the bundle's
// plain files and directories still read.
func TestHostCommandsRefuseABoxsSymlinkInAnExportedBundle(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	secretDir := filepath.Join(dir, "hostsecretdir")
	if err := os.Mkdir(secretDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secretDir, "s.txt"), []byte("HOSTSECRET-IN-DIR\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "secret.txt")
	if err := os.WriteFile(secret, []byte("SECRET-HOST-FILE\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	elsewhere := filepath.Join(dir, "out")
	out, code := runStepbox(t, filepath.Join(dir, "state"), "new app\nunshare mnt pid\nmount overlay base\npivot_root\n"+
		"exec sh -c 'ln -s "+secretDir+" /app; ln -s "+secret+" /leak; mkdir /d; echo plain-bundle-file > /d/plain'\n"+
		"export bundle $BOX_DIR/bundle\n"+
		"export bundle "+elsewhere+"\n"+
		"-!ls -l $BOX_DIR/bundle/rootfs/app/\n"+
		"-!cat $BOX_DIR/bundle/rootfs/leak\n"+
		"-!cat $BOX_DIR/bundle/rootfs/app/s.txt\n"+
		"-!cat "+elsewhere+"/rootfs/leak\n"+
		"!cat $BOX_DIR/bundle/rootfs/d/plain\n"+
		"!ls $BOX_DIR/bundle/rootfs/d\n"+
		"rm app\n"+
		"-!cat "+elsewhere+"/rootfs/app/s.txt\n"+
		"!cat "+elsewhere+"/rootfs/d/plain\n", "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	// -rw-------: ls -l's line of the host dir's s.txt.
	if strings.Contains(out, "SECRET-HOST-FILE") || strings.Contains(out, "HOSTSECRET-IN-DIR") || strings.Contains(out, "-rw-------") {
		t.Errorf("a host command listed or printed the host's through the bundle's symlink:\n%s", out)
	}
	if n := strings.Count(out, "\nplain-bundle-file\n"); n != 2 || !strings.Contains(out, "/d\nplain\n") {
		t.Errorf("the bundle's plain file should print twice (printed %d times) and its directory list:\n%s", n, out)
	}
	flat := regexp.MustCompile(`\n {7}`).ReplaceAllString(out, " ")
	for _, want := range []string{
		"/bundle/rootfs/leak is in the rootfs of box app's bundle (export bundle copied the box's symlinks as they are), where /leak is an absolute symlink, which the host's command resolves from the host's own / (-> " + secret + ")",
		elsewhere + "/rootfs/app/s.txt is in the rootfs of box app's bundle",
		"`exec cat /leak`",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "error: !: "); n != 5 {
		t.Errorf("%d host commands refused, want 5:\n%s", n, out)
	}
}

// ut34 F3: a bundle's path reaches the check however the learner spells
// it: relative to the session's working directory (what one types after
// `export bundle bun1`), with ./, //, /./ or a .. before the rootfs, as
// an option's value, and $BOX_DIR//bundle (lesson 8's bundle). Each is
// refused; a host file and the bundle's plain file, named relatively,
// still print.
func TestHostCommandsRefuseABundlesSymlinkHoweverItsPathIsSpelled(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.txt")
	if err := os.WriteFile(secret, []byte("SECRET-HOST-FILE\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hostfile.txt"), []byte("plain-host-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	refused := []string{
		"!cat bun1/rootfs/leak",
		"!cat ./bun1/rootfs/leak",
		"!cat bun1//rootfs/leak",
		"!cat " + dir + "//bun1/rootfs/leak",
		"!cat " + dir + "/./bun1/rootfs/leak",
		"!cat " + dir + "/bun1/./rootfs/leak",
		"!cat ../" + filepath.Base(dir) + "/bun1/rootfs/leak",
		"!dd if=bun1/rootfs/leak",
		"!cat $BOX_DIR//bundle/rootfs/leak",
		"!cat $BOX_DIR/bundle//rootfs/leak",
		"!cat $BOX_DIR/./bundle/rootfs/leak",
		"!cat $BOX_ROOT//leak",
		"!cat $BOX_UPPER/./leak",
	}
	script := "new app\nunshare mnt pid\nmount overlay base\npivot_root\n" +
		"exec sh -c 'ln -s " + secret + " /leak; echo plain-bundle-file > /plain'\n" +
		"export bundle bun1\nexport bundle $BOX_DIR/bundle\n" +
		"-" + strings.Join(refused, "\n-") + "\n" +
		"!cat hostfile.txt\n!cat ./bun1/rootfs/plain\n"
	cmd := exec.Command(stepboxBinary(t), "--plain", "--state-dir", filepath.Join(dir, "state"), "run", "-")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "COLUMNS=300")
	cmd.Stdin = strings.NewReader(script)
	raw, err := cmd.CombinedOutput()
	out := string(raw)
	if err != nil {
		t.Fatalf("stepbox run: %v:\n%s", err, out)
	}
	if strings.Contains(out, "SECRET-HOST-FILE") {
		t.Errorf("a host command printed the host's file through the bundle's symlink:\n%s", out)
	}
	for _, want := range []string{"\nplain-host-file\n", "\nplain-bundle-file\n", "bun1/rootfs/leak is in the rootfs of box app's bundle"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "error: !: "); n != len(refused) {
		t.Errorf("%d host commands refused, want %d (%s):\n%s", n, len(refused), strings.Join(refused, ", "), out)
	}
}

// A box process's working directory, a thread's root and cwd, and a
// directory it holds open each lead the host's command into the box's
// tree as $BOX_ROOT does, and only $BOX_ROOT is walked: `!cat
// /proc/$BOX_PID/cwd/leak` printed the host file the box's /leak named
// (found fixing ut34 F3). They are refused below the link; the link
// itself and the process's other files are still read.
func TestHostCommandsRefuseAPathThroughABoxProcesssCwdOrFd(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.txt")
	if err := os.WriteFile(secret, []byte("SECRET-HOST-FILE\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	refused := []string{
		"!cat /proc/$BOX_PID/cwd/leak",
		"!cat /proc/$BOX_PID/./cwd//leak",
		"!cat /proc/$BOX_PID/task/$BOX_PID/root/leak",
		"!cat /proc/$BOX_PID/task/$BOX_PID/cwd/leak",
		"!cat /proc/$BOX_PID/cwd/../leak",
		"!sh -c 'cat /proc/$BOX_PID/cwd/leak'",
		"!cp -rL /proc/$BOX_PID/cwd " + filepath.Join(dir, "copy"),
	}
	script := "new app\nunshare mnt pid\nmount overlay base\npivot_root\n" +
		"exec sh -c 'ln -s " + secret + " /leak; echo box-file > /plain'\n" +
		"-" + strings.Join(refused, "\n-") + "\n" +
		"!readlink /proc/$BOX_PID/cwd\n!ls /proc/$BOX_PID/cwd\n!grep -c . /proc/$BOX_PID/cgroup\n"
	out, code := runStepbox(t, filepath.Join(dir, "state"), script)
	if code != 0 {
		t.Fatalf("stepbox run: exit %d:\n%s", code, out)
	}
	if strings.Contains(out, "SECRET-HOST-FILE") {
		t.Errorf("a host command printed the host's file through a box process's cwd or root:\n%s", out)
	}
	if n := strings.Count(out, "error: !: "); n != len(refused) {
		t.Errorf("%d host commands refused, want %d (%s):\n%s", n, len(refused), strings.Join(refused, ", "), out)
	}
	flat := strings.Join(strings.Fields(out), " ")
	if !strings.Contains(flat, "goes through /proc/") || !strings.Contains(flat, "$BOX_ROOT") {
		t.Errorf("the refusal does not name the /proc link and what to use instead:\n%s", out)
	}
	for _, want := range []string{"\n/\n", "plain"} {
		if !strings.Contains(out, want) {
			t.Errorf("readlink or ls of the link itself did not run (%q):\n%s", want, out)
		}
	}
}
