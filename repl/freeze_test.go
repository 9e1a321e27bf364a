package repl

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/procfs"

	"stepbox/primitives/cgroups"
)

// A box freezes its own cgroup (ut27 F2): the v1 freezer's freezer.state
// FROZEN, in the cgroup `cgroup attach` put its PID 1 in (a box whose
// cgroup namespace was made before the attach sees the host's v1 tree),
// or cgroup2's cgroup.freeze 1 in the cgroup it is in (on v2, and in the
// tracking tree of a hybrid host). A task the v1 freezer holds does not
// act on SIGKILL: teardown used to take minutes, say it had ended
// processes still alive, and leave them and the cgroups behind, and
// `exec` waited for ever. Each test freezes only what its own box made,
// and its clean-up thaws that before anything else.

// freezeKind is one way a box freezes its cgroup.
type freezeKind struct {
	name string
	// box is the script that builds the box; freeze the shell words that
	// freeze the cgroup the command is in (mounted at /mnt).
	box, freeze string
	has         func() bool
	// holds says the freeze holds a task against SIGKILL (v1); a task
	// cgroup2's cgroup.freeze holds dies of it (cgroup-v2.rst).
	holds bool
}

var freezeKinds = []freezeKind{
	{
		name: "v1 freezer",
		box:  "new m\nunshare all\nmount overlay base\nmount dev\npivot_root\ncgroup new\ncgroup attach\n",
		freeze: `mount -t cgroup -o freezer cgroup /mnt && p=$(sed -n "s/^[0-9]*:freezer://p" /proc/self/cgroup) && ` +
			`echo FROZEN > /mnt$p/freezer.state`,
		has:   func() bool { return cgroupFSAt("/sys/fs/cgroup/freezer") },
		holds: true,
	},
	{
		// The cgroup the box was made in, its tracking cgroup, through
		// the whole tree: no cgroup namespace of its own, where
		// nsdelegate (on the 6.1 VM) refuses cgroup.freeze at the
		// namespace's root. The mount names the hierarchy's options
		// again ({v2opts}): from the host's cgroup namespace a plain one
		// turns nsdelegate off for the machine.
		name: "cgroup2 freeze",
		box:  "new m\nunshare uts ipc net mnt pid\nmount overlay base\nmount dev\npivot_root\n",
		freeze: `mount -t cgroup2 {v2opts} cgroup2 /mnt && c=$(sed -n "s/^0:://p" /proc/self/cgroup) && ` +
			`echo 1 > /mnt$c/cgroup.freeze`,
		has: func() bool {
			return cgroupFSAt("/sys/fs/cgroup/unified") || cgroupFSAt("/sys/fs/cgroup/cgroup.controllers")
		},
	},
}

// words are k.freeze with {v2opts} the host's cgroup2 options, as
// mount(8)'s -o.
func (k freezeKind) words(t *testing.T) string {
	t.Helper()
	mounts, err := procfs.GetMounts()
	if err != nil {
		t.Fatal(err)
	}
	opts := cgroups.V2MountOptions(mounts)
	if opts != "" {
		opts = "-o " + opts
	}
	return strings.ReplaceAll(k.freeze, "{v2opts}", opts)
}

func cgroupFSAt(p string) bool { _, err := os.Stat(p); return err == nil }

// frozenBox starts a session whose box m runs /bin/sleep arg and then
// freezes its cgroup from a background process (so no command of the
// session waits on it), and waits until the sleeper is frozen. It returns
// the session, its input, its output and the sleeper's PID.
func frozenBox(t *testing.T, k freezeKind, dir, arg string) (*exec.Cmd, *os.File, *syncBuffer, int) {
	t.Helper()
	if !k.has() {
		t.Skip("no " + k.name + " on this host")
	}
	out := &syncBuffer{}
	script := k.box + "exec sh -c '/bin/sleep " + arg + " </dev/null >/dev/null 2>&1 & " +
		"(sleep 0.2; " + k.words(t) + ") </dev/null >/dev/null 2>&1 &'\n"
	cmd, w := startSessionTo(t, dir, script, out)
	t.Cleanup(func() { endFrozen(t, cmd, w, dir, arg) })
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if s := sleepers(t, arg); len(s) == 1 && cgroups.Frozen(s[0]) != "" {
			return cmd, w, out, s[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("the box's sleeper never got frozen:\n%s", out)
		}
	}
}

// endFrozen is the tests' clean-up: it thaws what the test's box froze
// first, then ends the session (its own teardown, else SIGKILL and
// `stepbox cleanup`).
func endFrozen(t *testing.T, cmd *exec.Cmd, w *os.File, dir, arg string) {
	thawSession(t, cmd.Process.Pid, arg)
	w.Close()
	if cmd.ProcessState == nil {
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	thawSession(t, cmd.Process.Pid, arg)
	exec.Command(stepboxBinary(t), "--state-dir", dir, "cleanup").Run()
}

// thawSession is the tests' own safety net, run first at clean-up: it
// thaws every cgroup of the session with PID pid (stepbox-PID and below,
// which only the test's box froze), ends the test's sleeper by PID, and
// runs `stepbox cleanup` would the session have left anything.
func thawSession(t *testing.T, pid int, arg string) {
	for _, d := range sessionCgroups(t, pid) {
		filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				os.WriteFile(filepath.Join(p, "freezer.state"), []byte("THAWED"), 0)
				os.WriteFile(filepath.Join(p, "cgroup.freeze"), []byte("0"), 0)
			}
			return nil
		})
	}
	for _, p := range sleepers(t, arg) {
		syscall.Kill(p, syscall.SIGKILL)
	}
}

// sessionCgroups lists the directories of the parent cgroup of the
// session with PID pid (stepbox-PID), in every hierarchy.
func sessionCgroups(t *testing.T, pid int) []string {
	t.Helper()
	name := cgroups.ParentPrefix + strconv.Itoa(pid)
	var out []string
	filepath.WalkDir("/sys/fs/cgroup", func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.IsDir() {
			return nil
		}
		// stepbox-PID-START; on a systemd host it is inside the
		// session's scope, stepbox-PID-START-N.scope, which is walked.
		if e.Name() == name || strings.HasPrefix(e.Name(), name+"-") && !strings.HasSuffix(e.Name(), ".scope") {
			out = append(out, p)
			return filepath.SkipDir
		}
		return nil
	})
	return out
}

// boxCgroups lists the cgroups of box m left under the session's parent.
func boxCgroups(t *testing.T, pid int) []string {
	var out []string
	for _, d := range sessionCgroups(t, pid) {
		// m-ID and m.track ("[-.]" would be a bad pattern to Glob).
		for _, p := range []string{"m-*", "m.*"} {
			subs, err := filepath.Glob(filepath.Join(d, p))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, subs...)
		}
	}
	return out
}

// waitFile waits up to d for the file path, which the session touches
// once the lines before it have run.
func waitFile(path string, d time.Duration) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return true
		}
	}
	return false
}

// assertTruthful checks that the output has no Go format error and says
// "ended PID N" only of processes that are gone.
func assertTruthful(t *testing.T, out string) {
	t.Helper()
	if strings.Contains(out, "%!") {
		t.Errorf("a message holds a Go format error:\n%s", out)
	}
	for _, m := range regexp.MustCompile(`ended PID (\d+)`).FindAllStringSubmatch(out, -1) {
		pid, _ := strconv.Atoi(m[1])
		if _, err := os.Stat("/proc/" + m[1]); err == nil && processAlive(pid) {
			t.Errorf("it says it ended PID %d, which is still alive:\n%s", pid, out)
		}
	}
}

// processAlive says whether pid runs (a zombie has ended).
func processAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

// eachFreeze runs test for each way a box freezes its cgroup that the host
// has, in a state dir of its own, with a sleeper argument of its own
// (tag, the test's PID and the way's number).
func eachFreeze(t *testing.T, tag string, test func(t *testing.T, k freezeKind, dir, arg string)) {
	needRoot(t)
	ran := 0
	for i, k := range freezeKinds {
		// A way the host lacks (the v1 freezer on a pure v2 host) is not
		// run at all: with STEPBOX_MUST_WORK=1 a skip is a failure.
		if !k.has() {
			continue
		}
		ran++
		t.Run(k.name, func(t *testing.T) {
			hostUnchanged(t)
			test(t, k, t.TempDir(), tag+"."+strconv.Itoa(os.Getpid())+strconv.Itoa(i))
		})
	}
	if ran == 0 {
		t.Fatal("this host has neither a v1 freezer nor cgroup2's cgroup.freeze")
	}
}

func TestRmEndsABoxThatFrozeItsCgroup(t *testing.T) {
	eachFreeze(t, "881", func(t *testing.T, k freezeKind, dir, arg string) {
		cmd, w, out, pid := frozenBox(t, k, dir, arg)
		rmFrozen(t, cmd, w, out, dir, pid)
	})
}

// rmFrozen removes box m, whose processes pids a cgroup freezer holds,
// checks that everything of it ended and that the output is truthful,
// and ends the session.
func rmFrozen(t *testing.T, cmd *exec.Cmd, w *os.File, out *syncBuffer, dir string, pids ...int) {
	t.Helper()
	// What rm must leave none of is there to find before it.
	if before := boxCgroups(t, cmd.Process.Pid); len(before) == 0 {
		t.Fatalf("no cgroup of box m found under the session's parent before rm:\n%s", out)
	}
	w.WriteString("rm m\n!touch " + dir + "/removed\n")
	if !waitFile(dir+"/removed", 60*time.Second) {
		t.Fatalf("rm of the frozen box had not returned after 60 s:\n%s", out)
	}
	for _, p := range pids {
		if processAlive(p) {
			t.Errorf("the box's frozen sleeper %d outlived rm:\n%s", p, out)
		}
	}
	if left := boxCgroups(t, cmd.Process.Pid); len(left) > 0 {
		t.Errorf("rm left the box's cgroups %v:\n%s", left, out)
	}
	if !strings.Contains(out.String(), "box m removed") {
		t.Errorf("rm does not say the box was removed:\n%s", out)
	}
	assertTruthful(t, out.String())
	w.WriteString("exit\n")
	cmd.Wait()
	assertNoSessions(t, dir)
}

// assertSessionGone checks that what (exit, cleanup) ended the frozen
// sleeper pid and left none of the session's cgroups or state, and that
// its output out is truthful.
func assertSessionGone(t *testing.T, what string, session int, dir, out string, pid int) {
	t.Helper()
	if processAlive(pid) {
		t.Errorf("the box's frozen sleeper %d outlived %s:\n%s", pid, what, out)
	}
	if left := sessionCgroups(t, session); len(left) > 0 {
		t.Errorf("%s left the session's cgroups %v:\n%s", what, left, out)
	}
	assertTruthful(t, out)
	assertNoSessions(t, dir)
}

func TestExitEndsABoxThatFrozeItsCgroup(t *testing.T) {
	eachFreeze(t, "882", func(t *testing.T, k freezeKind, dir, arg string) {
		cmd, w, out, pid := frozenBox(t, k, dir, arg)
		w.WriteString("exit\n")
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Fatalf("exit with a frozen box had not ended the session after 60 s:\n%s", out)
		}
		assertSessionGone(t, "exit", cmd.Process.Pid, dir, out.String(), pid)
	})
}

func TestCleanupEndsAFrozenBoxAfterKill9(t *testing.T) {
	eachFreeze(t, "883", func(t *testing.T, k freezeKind, dir, arg string) {
		cmd, _, _, pid := frozenBox(t, k, dir, arg)
		cmd.Process.Kill()
		cmd.Wait()
		if k.holds && !processAlive(pid) {
			t.Fatal("the frozen sleeper died with the session: the test proves nothing")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, stepboxBinary(t), "--state-dir", dir, "cleanup").CombinedOutput()
		if ctx.Err() != nil {
			t.Fatalf("stepbox cleanup had not ended after 90 s:\n%s", out)
		}
		if err != nil {
			t.Errorf("cleanup: %v\n%s", err, out)
		}
		assertSessionGone(t, "cleanup", cmd.Process.Pid, dir, string(out), pid)
	})
}

// `exec` of a command that freezes its own cgroup (it and the box's PID 1
// with it) answers with the cause instead of waiting for ever, and `rm`
// still ends the box.
func TestExecInABoxThatFreezesItsCgroupAnswersWithTheCause(t *testing.T) {
	eachFreeze(t, "884", func(t *testing.T, k freezeKind, dir, arg string) {
		out := &syncBuffer{}
		cmd, w := startSessionTo(t, dir, k.box, out)
		t.Cleanup(func() { endFrozen(t, cmd, w, dir, arg) })
		w.WriteString("-exec sh -c '/bin/sleep " + arg + " </dev/null >/dev/null 2>&1 & " + k.words(t) + "; echo never'\n" +
			"!touch " + dir + "/answered\n")
		if !waitFile(dir+"/answered", 60*time.Second) {
			t.Fatalf("exec in a frozen box had not answered after 60 s:\n%s", out)
		}
		text := strings.Join(strings.Fields(out.String()), " ")
		if !strings.Contains(text, "is frozen (") || !strings.Contains(text, "`rm m` thaws") {
			t.Errorf("exec's error does not name the frozen cgroup and `rm`:\n%s", out)
		}
		rmFrozen(t, cmd, w, out, dir, sleepers(t, arg)...)
	})
}

// A box without namespaces of its own freezes its tracking cgroup through
// the host's cgroup2 tree (its cgroup.freeze), and a later `exec` is
// given up on the frozen box process (ut29 F15): `boxes` says the box is
// frozen and names the file that says so, and the command stepbox said
// did not run does not run once `rm` thaws the cgroup.
func TestExecGivenUpOnAFrozenBoxNeverRunsAndBoxesSaysFrozen(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	k := freezeKind{
		name: "cgroup2 freeze of the tracking cgroup",
		box:  "new m\n",
		freeze: `c=$(sed -n "s/^0:://p" /proc/self/cgroup); for d in /sys/fs/cgroup/unified /sys/fs/cgroup; do ` +
			`[ -f "$d$c/cgroup.freeze" ] && echo 1 > "$d$c/cgroup.freeze" && break; done`,
		has: freezeKinds[1].has,
	}
	dir := t.TempDir()
	arg := "885." + strconv.Itoa(os.Getpid())
	cmd, w, out, pid := frozenBox(t, k, dir, arg)
	// The command is a copy of true(1) whose access time lies before its
	// change: execve(2) reads it, which sets the access time (relatime),
	// so its running shows even if it dies at once (the executor's
	// PR_SET_PDEATHSIG).
	probe := filepath.Join(dir, "probe")
	exe, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(probe, exe, 0o755); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	w.WriteString("-exec " + probe + "\nboxes\n!touch " + dir + "/answered\n")
	if !waitFile(dir+"/answered", 60*time.Second) {
		t.Fatalf("exec in a frozen box had not answered after 60 s:\n%s", out)
	}
	text := strings.Join(strings.Fields(out.String()), " ")
	if !strings.Contains(text, "is frozen (") {
		t.Fatalf("exec was not given up on the frozen box:\n%s", out)
	}
	listed := text[strings.LastIndex(text, "> boxes"):]
	if !regexp.MustCompile(`\bm\b.*\bfrozen\b`).MatchString(listed) || !strings.Contains(listed, "cgroup.events reads frozen 1") {
		t.Errorf("boxes does not say box m is frozen and which file says so:\n%s", out)
	}
	if strings.Contains(listed, "exited") {
		t.Errorf("boxes says the frozen box exited:\n%s", out)
	}
	// What the session read of it while it looked the command up is
	// forgotten: from here on only an execve reads it.
	if err := os.Chtimes(probe, old, time.Now()); err != nil {
		t.Fatal(err)
	}
	// Whoever thaws the box (a process of it that froze it can, and
	// `rm` does) must not run it: here the test, as the box could.
	frozen := cgroups.Frozen(pid)
	if !strings.HasSuffix(frozen, "/cgroup.events reads frozen 1") {
		t.Fatalf("the sleeper is not held by cgroup2's freeze (%q)", frozen)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(strings.TrimSuffix(frozen, " reads frozen 1")), "cgroup.freeze"), []byte("0"), 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	rmFrozen(t, cmd, w, out, dir, pid)
	var st syscall.Stat_t
	if err := syscall.Stat(probe, &st); err != nil {
		t.Fatal(err)
	}
	if at := time.Unix(st.Atim.Sec, st.Atim.Nsec); !at.Equal(old) {
		t.Errorf("the command stepbox said it had given up was executed (its access time is %s) once the box was thawed:\n%s", at, out)
	}
}
