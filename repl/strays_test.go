package repl

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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
	// Long lines are wrapped.
	flat := strings.Join(strings.Fields(out), " ")
	if strings.Contains(flat, "box b removed: its processes ended") || !strings.Contains(flat, "box b removed: every process of it that stepbox found") ||
		!strings.Contains(flat, "joined the host's namespaces again (setns(2)) with its root off the box's overlay would not be found") {
		t.Errorf("rm b, of a box that ran a command as host root in the host's PID namespace, claims more than it checked:\n%s", out)
	}
	if !strings.Contains(out, "box c removed: its processes ended") {
		t.Errorf("rm c, of a box whose commands all ran in its own PID namespace, does not say its processes ended:\n%s", out)
	}
}

// rootScript moves the calling shell, a command of a box with the rights
// of host root and no PID namespace of its own, into the root cgroup of
// every hierarchy (v1's and v2's: where each is mounted, in the box's
// copy of the host's mount table), then becomes an unmarked sleeper, as
// $1 says: "ns" stays in the box's namespaces; "root" makes a mount and
// a UTS namespace of its own (unshare -m -u) and chroots into the box's
// overlay, so that only its root is the box's (ut28 F5).
const rootScript = `for d in $(awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/self/mounts); do
	echo $$ > "$d/cgroup.procs" || exit 1
done
[ "$1" = ns ] && exec env -i /bin/sleep "$2"
M=$(awk '$3 == "overlay" { print $2; exit }' /proc/self/mounts)
[ -n "$M" ] || exit 1
exec unshare -m -u chroot "$M" /usr/bin/env -i /bin/sleep "$2"
`

// A process of a host-root box with no PID namespace of its own that
// moved itself into the root cgroup of every hierarchy and cleared its
// environment is found by `rm` and ended, and named: in the box's
// namespaces, or, where it made namespaces of its own, by its root on
// the box's overlay. rm still says what it could not find.
func TestRmEndsAProcessThatLeftForTheRootCgroupsByItsNamespacesOrRoot(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	esc := filepath.Join(dir, "esc.sh")
	if err := os.WriteFile(esc, []byte(rootScript), 0o755); err != nil {
		t.Fatal(err)
	}
	args := map[string]string{"ns": "782." + strconv.Itoa(os.Getpid()) + "1", "root": "782." + strconv.Itoa(os.Getpid()) + "2"}
	defer func() {
		for _, arg := range args {
			for _, pid := range sleepers(t, arg) {
				syscall.Kill(pid, syscall.SIGKILL) // the test's own
			}
		}
	}()
	script := "new b\nunshare mnt uts\nmount overlay base\n"
	for how, arg := range args {
		script += "exec sh -c 'sh " + esc + " " + how + " " + arg + " >/dev/null 2>&1 </dev/null &'\n" +
			"!timeout 5 sh -c 'until pgrep -fx \"/bin/sleep " + arg + "\" >/dev/null; do sleep 0.02; done'\n" +
			"!sh -c 'P=$(pgrep -fx \"/bin/sleep " + arg + "\"); echo $P > " + dir + "/pid." + arg + "; cat /proc/$P/cgroup > " + dir + "/before." + arg + "'\n"
	}
	script += "-rm b\n"
	for _, arg := range args {
		script += "!sh -c 'pgrep -fx \"/bin/sleep " + arg + "\" > " + dir + "/after." + arg + "; true'\n"
	}
	script += "exit\n"
	out, code := runStepbox(t, dir, script)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for how, arg := range args {
		before, _ := os.ReadFile(filepath.Join(dir, "before."+arg))
		for _, l := range strings.Split(strings.TrimSpace(string(before)), "\n") {
			if !strings.HasSuffix(l, ":/") {
				t.Fatalf("the sleeper %s (%s) did not move to the root cgroups: its cgroups were\n%s\n%s", arg, how, before, out)
			}
		}
		pid, _ := os.ReadFile(filepath.Join(dir, "pid."+arg))
		after, err := os.ReadFile(filepath.Join(dir, "after."+arg))
		if err != nil {
			t.Fatal(err)
		}
		why := map[string]string{"ns": "in the box's mnt, uts namespace", "root": "its root on the box's overlay"}[how]
		if p := strings.TrimSpace(string(after)); p != "" {
			t.Errorf("the sleeper %s (PID %s, %s), in the root cgroups, outlived rm b:\n%s", arg, p, how, out)
		} else if want := "ended PID " + strings.TrimSpace(string(pid)) + ` ("sleep", ` + why + ") of box b"; !strings.Contains(strings.Join(strings.Fields(out), " "), want) {
			t.Errorf("rm b did not say %q:\n%s", want, out)
		}
	}
	if !strings.Contains(strings.Join(strings.Fields(out), " "), "joined the host's namespaces again (setns(2)) with its root off the box's overlay would not be found") {
		t.Errorf("rm b does not say what it could not find:\n%s", out)
	}
	assertNoSessions(t, dir)
}

// Every way a session ends says of each box that ran a command as host
// root outside a PID namespace of its own what rm says of it: the end of
// a script, with `exit` or without, a failed script's teardown, and
// `reset`; not of a box whose commands all ran in its own PID namespace
// (ut33 F2).
func TestEveryTeardownSaysAHostRootBoxCouldHaveEscapedTracking(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	const caveat = "box a removed: every process of it that stepbox found (in its cgroups, with its markers, in its namespaces, or with its root on its overlay) ended; " +
		"it ran a command as host root outside a PID namespace of its own, so one that left stepbox's cgroups, cleared its markers, " +
		"and joined the host's namespaces again (setns(2)) with its root off the box's overlay would not be found"
	boxes := "new a\nexec true\nnew c\nunshare pid\nexec true\n"
	for _, tc := range []struct {
		how, script string
		code        int
	}{
		{"exit", boxes + "exit\n", 0},
		{"the end of the script", boxes, 0},
		{"a failed script", boxes + "rm nosuch\n", 1},
		{"reset", boxes + "reset\nexit\n", 0},
	} {
		dir := t.TempDir()
		out, code := runStepbox(t, dir, tc.script)
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d:\n%s", tc.how, code, tc.code, out)
			continue
		}
		flat := strings.Join(strings.Fields(out), " ")
		if n := strings.Count(flat, caveat); n != 1 {
			t.Errorf("%s: says %d times (want once) that box a could have escaped tracking:\n%s", tc.how, n, out)
		}
		if strings.Contains(flat, "box c removed: every process") || strings.Contains(flat, "box c: it ran") {
			t.Errorf("%s: says box c, whose commands all ran in its own PID namespace, could have escaped tracking:\n%s", tc.how, out)
		}
		assertNoSessions(t, dir)
	}
}

// SIGHUP (the terminal closed) says it too, in the teardown it runs
// (ut33 F2).
func TestSIGHUPSaysAHostRootBoxCouldHaveEscapedTracking(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	cmd := exec.Command(stepboxBinary(t), "--state-dir", dir, "run", "-")
	cmd.Env = append(os.Environ(), "COLUMNS=300")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	run := childStepbox(t, cmd, dir, unix.SIGTERM)
	fmt.Fprintf(in, "new a\nexec true\n!touch %s\n", ready)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the script did not reach its last line in 30 s")
		}
	}
	run.signal(unix.SIGHUP)
	if err := waitPidfd(run.pidfd, 30*time.Second); err != nil {
		t.Fatalf("stepbox did not end 30 s after SIGHUP: %v", err)
	}
	cmd.Wait()
	flat := strings.Join(strings.Fields(out.String()), " ")
	if !strings.Contains(flat, "box a removed: every process of it that stepbox found") ||
		!strings.Contains(flat, "joined the host's namespaces again (setns(2)) with its root off the box's overlay would not be found") {
		t.Errorf("the teardown on SIGHUP does not say box a could have escaped tracking:\n%s", out.String())
	}
}
