package repl

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// strayScript moves the calling shell from box b's tracking cgroup into
// the cgroup $1 names relative to stepbox's parent ("" for the parent
// itself, or a child of it on cgroup v2; "a.track" for box a's), in every
// hierarchy the parent is in,
// then becomes an unmarked sleeper: only stepbox's own cgroups are
// written (ut25 F2).
const strayScript = `P=$(sed -n 's|^[^:]*:[^:]*:\(.*\)/b\.track$|\1|p' /proc/self/cgroup | head -n 1)
[ -n "$P" ] || exit 1
for base in /sys/fs/cgroup /sys/fs/cgroup/*; do
	d="$base$P/$1"
	[ -f "$d/cgroup.procs" ] || continue
	# cgroup v2 keeps processes out of a cgroup whose controllers are on
	# for its children (EBUSY): then a child of the box's own making.
	echo $$ > "$d/cgroup.procs" 2>/dev/null || { mkdir -p "$d/stray" && echo $$ > "$d/stray/cgroup.procs"; } || exit 1
done
exec env -i /bin/sleep "$2"
`

// A process of a box that moves itself into stepbox's parent cgroup, or
// into another box's tracking cgroup, is found by `rm` of its box, ended,
// and named; the other box and its processes are untouched, and rm does
// not claim more than it checked.
func TestRmEndsAProcessThatMovedIntoAnotherOfTheSessionsCgroups(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	esc := filepath.Join(dir, "esc.sh")
	if err := os.WriteFile(esc, []byte(strayScript), 0o755); err != nil {
		t.Fatal(err)
	}
	args := map[string]string{"": "781." + strconv.Itoa(os.Getpid()) + "1", "a.track": "781." + strconv.Itoa(os.Getpid()) + "2"}
	script := "new a\nexec sleep 0\nunshare pid\nnew b\n"
	for where, arg := range args {
		script += "exec sh -c 'sh " + esc + " \"" + where + "\" " + arg + " >/dev/null 2>&1 </dev/null &'\n" +
			"!timeout 5 sh -c 'until pgrep -fx \"/bin/sleep " + arg + "\" >/dev/null; do sleep 0.02; done'\n" +
			"!sh -c 'cat /proc/$(pgrep -fx \"/bin/sleep " + arg + "\")/cgroup > " + dir + "/before." + arg + "'\n"
	}
	script += "-rm b\n"
	for _, arg := range args {
		script += "!sh -c 'pgrep -fx \"/bin/sleep " + arg + "\" > " + dir + "/after." + arg + "; true'\n"
	}
	script += "exec echo box-a-alive\nexit\n"
	out, code := runStepbox(t, dir, script)
	defer func() {
		for _, arg := range args {
			for _, pid := range sleepers(t, arg) {
				syscall.Kill(pid, syscall.SIGKILL) // the test's own
			}
		}
	}()
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for where, arg := range args {
		before, _ := os.ReadFile(filepath.Join(dir, "before."+arg))
		if strings.Contains(string(before), "b.track") || !strings.Contains(string(before), "/stepbox-") {
			t.Fatalf("the sleeper %s did not move to stepbox's cgroup %q: its cgroups were\n%s\n%s", arg, where, before, out)
		}
		after, err := os.ReadFile(filepath.Join(dir, "after."+arg))
		if err != nil {
			t.Fatal(err)
		}
		if pid := strings.TrimSpace(string(after)); pid != "" {
			t.Errorf("the sleeper %s (PID %s), moved to stepbox's cgroup %q, outlived rm b:\n%s", arg, pid, where, out)
		} else if !strings.Contains(out, `("sleep") of box b (it descends from the box's process): it had left the box's cgroups`) {
			t.Errorf("rm b did not say it ended the sleeper %s:\n%s", arg, out)
		}
	}
	if strings.Contains(out, "box b removed: its processes ended") {
		t.Errorf("rm b claims more than it checked:\n%s", out)
	}
	if !strings.Contains(out, "box-a-alive") {
		t.Errorf("box a did not survive rm b:\n%s", out)
	}
	assertNoSessions(t, dir)
}

// rm says what it checked: every process ended only for a box whose
// commands all ran in its own PID namespace; for one that ran a command
// as host root outside it, that what left stepbox's cgroups and cleared
// its markers would not have been found.
func TestRmSaysAHostRootBoxCouldHaveEscapedTracking(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	out, code := runStepbox(t, t.TempDir(), "new b\nexec true\nrm b\nnew c\nunshare pid\nexec true\nrm c\nexit\n")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if strings.Contains(out, "box b removed: its processes ended") || !strings.Contains(out, "box b removed: every process of it that stepbox found ended") ||
		!strings.Contains(out, "cleared its markers would not be found") {
		t.Errorf("rm b, of a box that ran a command as host root in the host's PID namespace, claims more than it checked:\n%s", out)
	}
	if !strings.Contains(out, "box c removed: its processes ended") {
		t.Errorf("rm c, of a box whose commands all ran in its own PID namespace, does not say its processes ended:\n%s", out)
	}
}
