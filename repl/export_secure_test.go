package repl

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// hostileValues are image values a shell would misread if quoted for
// bash only or not at all: quotes, newlines, command substitutions,
// backquotes and control bytes.
var hostileValues = []string{"a'b", "$(echo INJ)", "`echo INJ-BT`", "x\ny", "c\x01d\x1b[31me\x7f", `"dq"\`, "tab\there", ""}

// The script `export script` writes runs under dash (Debian's /bin/sh,
// as the script tells the learner: sh FILE) and hands the image's Cmd
// arguments and Env values to the box's command exactly as the image
// has them; the file holds no bash-only $'…' and no raw control bytes.
func TestExportScriptKeepsHostileImageValuesLiteralUnderDash(t *testing.T) {
	needRoot(t)
	dash, err := exec.LookPath("dash")
	if err != nil {
		t.Skip("no dash here")
	}
	hostUnchanged(t)
	dir := t.TempDir()
	state, demo, archive, file := filepath.Join(dir, "state"), filepath.Join(dir, "demo.tar"), filepath.Join(dir, "hostile.tar"), filepath.Join(dir, "h.sh")
	if out, code := runStepbox(t, state, "image demo "+demo+"\n", "--plain"); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	prog := `for a; do printf '<%s>' "$a"; done; printf '[%s][%s]{%s}' "$Q1" "$Q2" "${INJNL:-unset}"`
	writeImageWith(t, demo, archive, "stepbox/hostile:latest", func(c *v1.Config) {
		c.Cmd = append([]string{"/bin/sh", "-c", prog, "sh"}, hostileValues...)
		c.Env = append(c.Env, "Q1=x\nexport INJNL=1\n", "Q2=$(id)'\x1b`id`")
	})
	script := "image load " + archive + "\nnew h\nunshare uts ipc mnt pid\nmount overlay stepbox/hostile\npivot_root\nexport script " + file + "\n"
	if out, code := runStepbox(t, state, script, "--plain"); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "$'") || strings.ContainsFunc(string(b), func(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' || r == 0x7f }) {
		t.Errorf("the script holds bash-only $'…' or raw control bytes:\n%q", b)
	}
	cmd := exec.Command(dash, file)
	cmd.Env = append(os.Environ(), "BOXDIR="+filepath.Join(dir, "box"))
	got, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dash %s: %v\n%s\nthe script:\n%s", file, err, got, b)
	}
	var want strings.Builder
	for _, v := range hostileValues {
		fmt.Fprintf(&want, "<%s>", v)
	}
	want.WriteString("[x\nexport INJNL=1\n][$(id)'\x1b`id`]{unset}")
	if string(got) != want.String() {
		t.Errorf("under dash the box's command got\n%q\nwant\n%q", got, want.String())
	}
}

// The script builds the box in a new directory from mktemp -d, not at
// the predictable /tmp/stepbox-script-NAME another user could make
// first with their own program in the overlay's upper dir; it removes
// that directory at the end; and it refuses a BOXDIR the learner names
// that another user owns.
func TestExportScriptBuildsTheBoxWhereNoOtherUserCanPlant(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	state, archive, file := filepath.Join(dir, "state"), filepath.Join(dir, "demo.tar"), filepath.Join(dir, "b.sh")
	name := fmt.Sprintf("p%d", os.Getpid())
	// What the other user makes: the old default path, and their own dir.
	planted := filepath.Join("/tmp", "stepbox-script-"+name)
	theirs := filepath.Join(dir, "theirs")
	t.Cleanup(func() { os.RemoveAll(planted) })
	for _, d := range []string{planted, theirs} {
		if err := os.MkdirAll(filepath.Join(d, "upper", "app"), 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "upper", "app", "hello.sh"), []byte("#!/bin/sh\necho ATTACKER-RAN\n"), 0o777); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{d, d + "/upper", d + "/upper/app", d + "/upper/app/hello.sh"} {
			if err := os.Chown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	script := "image demo " + archive + "\nimage load " + archive + "\nnew " + name + "\nunshare uts ipc mnt pid\nmount overlay stepbox/demo\npivot_root\nexport script " + file + "\n"
	if out, code := runStepbox(t, state, script, "--plain"); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	run := func(env ...string) (string, error) {
		cmd := exec.Command("sh", file)
		cmd.Env = append(append(os.Environ(), "TMPDIR="+tmp), env...)
		got, err := cmd.CombinedOutput()
		return string(got), err
	}
	got, err := run()
	if err != nil || strings.Contains(got, "ATTACKER") || !strings.Contains(got, "hello from /app") {
		t.Errorf("sh %s: %v\n%s", file, err, got)
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("the script's directory was left in TMPDIR: %v", left)
	}
	got, err = run("BOXDIR=" + theirs)
	if err == nil || strings.Contains(got, "ATTACKER") || !strings.Contains(got, "give a directory of yours that no other user can write") {
		t.Errorf("with BOXDIR=%s, the other user's dir: %v\n%s", theirs, err, got)
	}
}

// export script, save, image demo and --record write nothing through a
// symlink another user planted at the path in a shared sticky directory
// (/tmp): each refuses, says what is allowed, and the file the symlink
// points to is unchanged.
func TestFileCommandsRefuseANameAnotherUserPlanted(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	state, shared, victim := filepath.Join(dir, "state"), filepath.Join(dir, "tmp"), filepath.Join(dir, "victim")
	if err := os.Mkdir(shared, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(shared, 0o1777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(victim, []byte("root's own\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	box := "new a\nunshare uts mnt pid\nmount overlay base\npivot_root\n"
	for _, c := range []struct{ name, script string }{
		{"a.sh", box + "export script %s\n"},
		{"s.sb", "new a\nsave %s\n"},
		{"d.tar", "image demo %s\n"},
		{"r.cast", "boxes\n"},
	} {
		p := filepath.Join(shared, c.name)
		if err := os.Symlink(victim, p); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		var args []string
		script := c.script
		if strings.Contains(script, "%s") {
			script = fmt.Sprintf(script, p)
		} else {
			args = []string{"--record", p}
		}
		out, code := runStepbox(t, state, script, append(args, "--plain")...)
		// The message wraps at the terminal's width: its start.
		if code == 0 || !strings.Contains(out, "in a directory other users can write") {
			t.Errorf("%q with %s planted: exit %d, want a refusal saying what is allowed:\n%s", script, p, code, out)
		}
		if b, err := os.ReadFile(victim); err != nil || string(b) != "root's own\n" {
			t.Fatalf("%q wrote through the planted symlink %s: %q, %v", script, p, b, err)
		}
	}
}

// export bundle refuses an empty directory another user owns, and into
// a new one copies the box's root without the device nodes the box made
// (it says how many and why) and with a sparse file's holes kept.
func TestExportBundleLeavesOutTheBoxsDeviceNodesAndKeepsHoles(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	state, theirs, bundle := filepath.Join(dir, "state"), filepath.Join(dir, "theirs"), filepath.Join(dir, "bundle")
	if err := os.Mkdir(theirs, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	box := "new b\nunshare uts ipc mnt pid\nmount overlay base\npivot_root\ncaps docker\n" +
		"exec sh -c 'mknod /vda b 254 0 && mknod /kmsg c 1 11 && chmod 666 /vda /kmsg && truncate -s 200M /big'\n"
	out, code := runStepbox(t, state, box+"export bundle "+theirs+"\n", "--plain")
	if code == 0 || !strings.Contains(out, "empty one that is yours") {
		t.Errorf("export bundle into another user's empty dir: exit %d:\n%s", code, out)
	}
	if des, _ := os.ReadDir(theirs); len(des) > 0 {
		t.Errorf("written into the other user's dir: %v", des)
	}
	out, code = runStepbox(t, state, box+"export bundle "+bundle+"\n", "--plain")
	if code != 0 || !strings.Contains(out, "2 device nodes of the box's root left out of rootfs") {
		t.Fatalf("exit %d, want a note on the 2 device nodes left out:\n%s", code, out)
	}
	for _, n := range []string{"vda", "kmsg"} {
		if _, err := os.Lstat(filepath.Join(bundle, "rootfs", n)); err == nil {
			t.Errorf("rootfs/%s was copied", n)
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(bundle, "rootfs", "big"), &st); err != nil || st.Size != 200<<20 || st.Blocks*512 > 1<<20 {
		t.Errorf("rootfs/big: %d bytes in %d blocks, %v; want 200 MiB kept sparse", st.Size, st.Blocks, err)
	}
}
