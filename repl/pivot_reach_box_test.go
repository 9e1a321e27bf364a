package repl

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"stepbox/primitives/step"
)

// ut34 F5: pivot_root named a mount the box made in its new root only
// when it was a bind of a host dir: a fresh proc of the host's PID
// namespace (/hp/2/cwd is the host's /) and an overlay of host dirs (the
// box writes its upper dir) passed as "detached and unreachable", and
// `probe proc_root` said closed. Now every mount no step made is named
// unless it is provably the box's own: here a bind of a dir of the box's
// upper tmpfs (which the old line named, its device being a host
// mount's), a bind of the box's own /etc, an overlay of the box's own
// dirs and a proc mounted after `unshare pid` are not; the proc of the
// host's PID namespace, the overlay of the test's dirs and an overlay
// whose lowerdir, inside the box's tree by its text, was a symlink to
// the test's dir are, each with why and what to do, and proc_root finds
// the host's file through /hp.
func TestPivotRootNamesBoxMountsOfTheHostsProcAndDirs(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := boxTempDir(t)
	victim := scratchDir(t, dir, "victim")
	ovu, ovw := filepath.Join(dir, "ovu"), filepath.Join(dir, "ovw")
	for _, d := range []string{ovu, ovw} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	merged := `M=$(grep " - overlay " /proc/self/mountinfo | cut -d" " -f5 | head -1); `
	upper := `U=$(grep -o "upperdir=[^,]*" /proc/self/mountinfo | head -1 | cut -d= -f2); O=$(dirname $U); `
	script := "new a\nunshare uts ipc net mnt\nmount overlay base\n" +
		"exec sh -c '" + merged + upper + "set -e; mkdir -p $M/hp $M/ov $M/ub $M/eb $M/mine/low $M/mineat $M/ln $O/own $O/ownw; " +
		"mount -t proc proc $M/hp; " +
		"mount -t overlay overlay -o lowerdir=" + victim + ",upperdir=" + ovu + ",workdir=" + ovw + " $M/ov; " +
		"mount --bind $O/own $M/ub; mount --bind $M/etc $M/eb; " +
		"mount -t overlay overlay -o lowerdir=$M/mine/low,upperdir=$O/own,workdir=$O/ownw $M/mineat; " +
		"ln -s " + victim + " $M/lnk; mount -t overlay overlay -o lowerdir=$M/lnk:$M/etc $M/ln'\n" +
		"unshare pid\n" +
		"exec sh -c '" + merged + "mkdir -p $M/op && mount -t proc proc $M/op'\n" +
		"pivot_root\nprobe proc_root\n"
	out, code := runStepboxAt(t, 4000, filepath.Join(dir, "state"), script, "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	onlyKeep(t, victim, out)
	f := flat(out)
	if strings.Contains(out, "unreachable") {
		t.Errorf("pivot_root calls the host unreachable while the box has the host's proc and an overlay of host dirs:\n%s", out)
	}
	for _, w := range []string{
		"✓ the overlay is the box's / now and the host's root is detached, but 3 mounts inside still show host files",
		"/hp: a proc mount of proc that no step of stepbox's made: the box mounted it before pivot_root, and it is a proc of the host's PID namespace: the host's processes are listed there, and their /N/root and /N/cwd lead to the host's /; `exec umount /hp` detaches it; a proc of the box's own is one mounted after `unshare pid`",
		"/ov: an overlay mount of overlay that no step of stepbox's made: the box mounted it before pivot_root, and it is an overlay of " + step.Cut(victim) + ", outside the box's tree ($BOX_DIR/overlay): through it the box reads that host dir, and writes its upper dir; `exec umount /ov` detaches it",
		"/ln: an overlay mount of overlay that no step of stepbox's made: the box mounted it before pivot_root, and it is an overlay of $BOX_DIR/overlay/merged/lnk, which is no directory of the box's own now (a symlink, or another mount, on the way",
	} {
		if !strings.Contains(f, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	for _, bad := range []string{"  /ub:", "  /eb", "  /mineat:", "  /op:", "  /proc:"} {
		if strings.Contains(out, bad) {
			t.Errorf("output names %q, a mount of the box's own:\n%s", bad, out)
		}
	}
	if !regexp.MustCompile(`proc_root +│ open +│ read the host's (/etc/[\w-]+) through /hp/\d+/(cwd/\.\./\.\.|root)/etc/[\w-]+, a proc mount of the box's besides /proc`).MatchString(out) {
		t.Errorf("probe proc_root does not find the host's file through /hp:\n%s", out)
	}
}

// The lesson's path, stepbox's own mounts only (proc, sys, cgroup, dev,
// a tmpfs, the masks), root and in a user namespace: pivot_root's line
// is as it was, the host unreachable, and proc_root closed.
func TestPivotRootLessonPathNamesNoMount(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	for _, c := range []struct{ name, flag string }{{"r", ""}, {"u", " --user"}} {
		t.Run(c.name, func(t *testing.T) {
			dir := boxTempDir(t)
			script := "new " + c.name + c.flag + "\nunshare all\nmount overlay base\nmount proc\nmount sys\nmount cgroup\nmount dev\nmount tmpfs /tmp\nmount mask\npivot_root\nprobe proc_root\n"
			out, code := runStepboxAt(t, 4000, filepath.Join(dir, "state"), script, "--plain")
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, out)
			}
			if !strings.Contains(out, "✓ the overlay is the box's / now; the host's root is detached and unreachable from inside\n") {
				t.Errorf("pivot_root's line on the lesson's path changed, or names a mount:\n%s", out)
			}
			if !regexp.MustCompile(`proc_root +│ closed`).MatchString(out) {
				t.Errorf("proc_root is not closed on the lesson's path:\n%s", out)
			}
		})
	}
}

// The judgement is bounded: past the first reachLooked proc and overlay
// mounts, HostReach looks into none and names the rest as not known to
// be the box's own, so a box that makes thousands does not hold
// pivot_root; the line shows reachShown of them and counts the others.
func TestPivotRootLooksIntoABoundedNumberOfBoxMounts(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := boxTempDir(t)
	merged := `M=$(grep " - overlay " /proc/self/mountinfo | cut -d" " -f5 | head -1); `
	script := "new a\nunshare uts ipc net mnt pid\nmount overlay base\n" +
		"exec sh -c '" + merged + "set -e; for i in $(seq 300); do mkdir -p $M/p/$i; mount -t proc proc $M/p/$i; done'\n" +
		"pivot_root\n"
	out, code := runStepboxAt(t, 4000, filepath.Join(dir, "state"), script, "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, w := range []string{
		"but 44 mounts inside still show host files",
		"and 39 more: `mounts` lists them",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	// Which 44 follows the mount IDs the pivot's copies got, which the
	// kernel hands out lowest free first, across the whole host.
	if n := len(regexp.MustCompile("(?m)^  /p/\\d+: a proc mount of proc that no step of stepbox's made: the box mounted it before pivot_root, and stepbox cannot tell that it shows only the box's own files").FindAllString(out, -1)); n != 5 {
		t.Errorf("%d proc mounts named as not looked into, want 5 (reachShown):\n%s", n, out)
	}
}
