package repl

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"stepbox/primitives"
)

// upperMounts lists the host's mount points of stepbox's upper tmpfs
// under dir.
func upperMounts(t *testing.T, dir string) []string {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == "stepbox-upper" && strings.HasPrefix(f[1], dir+"/") {
			out = append(out, f[1])
		}
	}
	return out
}

// Issue 15 item 10: a box's upper dir is on a tmpfs of its own with a
// bound; a box that writes past it gets ENOSPC, the learner is told what
// filled up and its size, the session goes on, and nothing is left.
func TestABoxThatFillsItsUpperDirGetsENOSPCAndTheSessionGoesOn(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	t.Setenv(primitives.UpperSizeEnv, "16")
	dir := t.TempDir()
	script := "new db\nunshare mnt pid\nmount overlay base\nmount proc\nmount dev\npivot_root\n" +
		"!test -n \"$(grep '^stepbox-upper .*tmpfs' /proc/self/mounts)\"\n" +
		"-exec dd if=/dev/zero of=/big bs=1M count=64\n" +
		"exec sh -c 'rm /big && echo still writable > /small && cat /small'\n" +
		"new web\n!touch $STATE/run/usable\nexit\n"
	out, code := runStepbox(t, dir, script)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{"No space left on device", "box db's upper dir is full: the tmpfs stepbox", "holds 16 MB", "still writable"} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q:\n%s", want, out)
		}
	}
	if m := upperMounts(t, dir); len(m) > 0 {
		t.Errorf("upper tmpfs still mounted after exit: %v", m)
	}
	assertNoSessions(t, dir)
}

// ut34 F6: the upper tmpfs is bounded in inodes too (nr_inodes=), each
// of which is kernel memory its size= does not count: a box making empty
// files without end gets ENOSPC at the bound, the learner is told it ran
// out of inodes (df -h shows room), and rm gives them back. A 16 MB upper
// gets stepbox's least, 32768.
func TestABoxOutOfInodesInItsUpperDirGetsENOSPCNamingThem(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	t.Setenv(primitives.UpperSizeEnv, "16")
	dir := t.TempDir()
	script := "new db\nunshare mnt pid\nmount overlay base\npivot_root\n" +
		"!grep -q '^stepbox-upper .*tmpfs .*,nr_inodes=32768[,]' /proc/self/mounts\n" +
		"-exec sh -c 'mkdir /f && cd /f && touch $(seq 1 33000)'\n" +
		"exec sh -c 'rm -r /f && echo inodes back > /after && cat /after'\n" +
		"exit\n"
	out, code := runStepbox(t, dir, script, "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	flat := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{"No space left on device", "box db's upper dir is out of inodes: the tmpfs stepbox gave it holds 32768 files, directories and links at most (nr_inodes=32768, stepbox's least", "inodes back"} {
		if !strings.Contains(flat, want) {
			t.Errorf("the output lacks %q:\n%s", want, out)
		}
	}
	// The doctor says the bound where it says the size.
	doc, _ := exec.Command(stepboxBinary(t), "--plain", "--state-dir", dir, "doctor").CombinedOutput()
	if want := "16 MB ($" + primitives.UpperSizeEnv + ") and 32768 inodes"; !strings.Contains(strings.Join(strings.Fields(string(doc)), " "), want) {
		t.Errorf("stepbox doctor does not say %q:\n%s", want, doc)
	}
	if m := upperMounts(t, dir); len(m) > 0 {
		t.Errorf("upper tmpfs still mounted after exit: %v", m)
	}
	assertNoSessions(t, dir)
}

// After `kill -9` of the session, `stepbox cleanup` unmounts the box's
// upper tmpfs: the host's mount table is as it was.
func TestCleanupUnmountsTheUpperTmpfsOfAKilledSession(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	cmd, w := startSession(t, dir, "new db\nunshare mnt\nmount overlay base\n")
	defer w.Close()
	if len(upperMounts(t, dir)) != 1 {
		t.Fatalf("the box has no upper tmpfs in the host's mount table: %v", upperMounts(t, dir))
	}
	cmd.Process.Kill()
	cmd.Wait()
	if len(upperMounts(t, dir)) != 1 {
		t.Fatal("the upper tmpfs went with the session: the test proves nothing")
	}
	out, err := exec.Command(stepboxBinary(t), "--state-dir", dir, "cleanup").CombinedOutput()
	if err != nil {
		t.Fatalf("cleanup: %v\n%s", err, out)
	}
	if m := upperMounts(t, dir); len(m) > 0 {
		t.Errorf("upper tmpfs still mounted after cleanup: %v\n%s", m, out)
	}
	assertNoSessions(t, dir)
}

// ut32 F2: a $STEPBOX_UPPER_MB that is not a whole number of MB from 0
// to 1024 gave every box its upper dir on the host's disk, with nothing
// said; it is refused at start, naming the variable, the value and what
// is allowed, before any box. 0 (documented: no tmpfs) is said at start.
func TestABadUpperSizeIsRefusedAtStart(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	for _, v := range []string{"abc", "-1", "2000", "99999999999999", "1.5"} {
		t.Setenv(primitives.UpperSizeEnv, v)
		dir := t.TempDir()
		out, code := runStepbox(t, dir, "new x\n")
		if code != 2 {
			t.Errorf("%s=%s: exit %d, want 2:\n%s", primitives.UpperSizeEnv, v, code, out)
		}
		for _, want := range []string{"$" + primitives.UpperSizeEnv + "=" + strconv.Quote(v), "give a whole number of MB from 1 to 1024", "or 0 for no tmpfs"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s=%s: the output lacks %q:\n%s", primitives.UpperSizeEnv, v, want, out)
			}
		}
		if strings.Contains(out, "✓ box x") {
			t.Errorf("%s=%s: a box was made:\n%s", primitives.UpperSizeEnv, v, out)
		}
		if m := upperMounts(t, dir); len(m) > 0 {
			t.Errorf("%s=%s: upper tmpfs left mounted: %v", primitives.UpperSizeEnv, v, m)
		}
	}
	t.Setenv(primitives.UpperSizeEnv, "0")
	out, code := runStepbox(t, t.TempDir(), "new x\n")
	if code != 0 || !strings.Contains(out, "$"+primitives.UpperSizeEnv+"=0: the boxes' upper dirs get no tmpfs of their own") {
		t.Errorf("%s=0: exit %d, want 0 and a word at start that the boxes get no tmpfs:\n%s", primitives.UpperSizeEnv, code, out)
	}
}
