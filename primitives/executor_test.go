package primitives

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// threads counts the tasks of a process (/proc/PID/task).
func threads(t *testing.T, pid int) int {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// The executor is C entered before the Go runtime: the box process and
// its PID 1 are one thread each, and an idle box's cgroup holds one task.
func TestIdleBoxWithPIDNamespaceHoldsOneTask(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	b, _, err := s.NewBox("one", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unshare([]NamespaceType{mustType(t, "mnt"), mustType(t, "pid")}, UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := threads(t, b.PID()); n != 1 {
		t.Errorf("the box process has %d threads, want 1", n)
	}
	if n := threads(t, b.InitPID()); n != 1 {
		t.Errorf("PID 1 has %d threads, want 1", n)
	}
	if _, err := b.CgroupNew(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.CgroupLimit("pids", "4"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.CgroupAttach(); err != nil {
		t.Fatal(err)
	}
	var current string
	for _, d := range b.Cgroup().Dirs {
		if raw, err := os.ReadFile(filepath.Join(d.Path, "pids.current")); err == nil {
			current = strings.TrimSpace(string(raw))
		}
	}
	if current != "1" {
		t.Errorf("pids.current of the idle box = %q, want 1", current)
	}
	// As `docker run --init --pids-limit 4` does: a shell and two
	// children fit under the limit.
	out := run(t, b, "sh", "-c", "echo hello; sleep 0.2 & sleep 0.2 & wait; echo done")
	if out != "hello\ndone\n" {
		t.Errorf("under pids.max 4 the shell printed %q, want both lines", out)
	}
}

// PID 1 is forked from the executor, not exec'd: it needs nothing from
// the box's root, so `unshare pid` works after pivot_root.
func TestUnsharePIDAfterPivotRoot(t *testing.T) {
	needRoot(t)
	_, b := overlayBox(t, "late")
	if _, err := b.PivotRoot(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unshare([]NamespaceType{mustType(t, "pid")}, UnshareOptions{}); err != nil {
		t.Fatalf("unshare pid after pivot_root: %v", err)
	}
	if _, err := b.Mount("proc", "", "/proc", false); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(run(t, b, "sh", "-c", "echo $PPID")); got != "1" {
		t.Errorf("a command's parent inside the box is PID %s, want 1", got)
	}
}

// A user namespace owns only the namespaces made after it (user_namespaces(7)):
// after `unshare uts` then `unshare user` the box's root may not rename
// the UTS namespace, which the host's user namespace owns; in the other
// order it may.
func TestUnshareUserOwnsOnlyWhatComesAfter(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	before, _, err := s.NewBox("before", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"uts", "user"} {
		if _, err := before.Unshare([]NamespaceType{mustType(t, typ)}, UnshareOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = before.Sethostname("x")
	if step := errnoOf(err); step != unix.EPERM {
		t.Errorf("hostname after unshare uts, then user: %v, want EPERM", err)
	}
	snap, err := before.Namespaces()
	if err != nil {
		t.Fatal(err)
	}
	hostUser := nsInode(t, os.Getpid(), "user")
	for _, r := range snap.Rows {
		if r.Type == "uts" && r.Owner != hostUser {
			t.Errorf("the UTS namespace made before the user namespace is owned by %d, want the host's %d", r.Owner, hostUser)
		}
	}

	after, _, err := s.NewBox("after", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"user", "uts"} {
		if _, err := after.Unshare([]NamespaceType{mustType(t, typ)}, UnshareOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := after.Sethostname("x"); err != nil {
		t.Fatalf("hostname after unshare user, then uts: %v", err)
	}
	if got := strings.TrimSpace(run(t, after, "hostname")); got != "x" {
		t.Errorf("hostname inside = %q, want x", got)
	}
	snap, err = after.Namespaces()
	if err != nil {
		t.Fatal(err)
	}
	boxUser := nsInode(t, after.PID(), "user")
	for _, r := range snap.Rows {
		if r.Type == "uts" && r.Owner != boxUser {
			t.Errorf("the UTS namespace made after the user namespace is owned by %d, want the box's %d", r.Owner, boxUser)
		}
	}
}

func errnoOf(err error) unix.Errno {
	var errno unix.Errno
	errors.As(err, &errno)
	return errno
}

// As root, `unshare user` maps the box's root to an unprivileged range:
// root inside, nobody outside.
func TestUnshareUserMapsRootToAnUnprivilegedRange(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	b, _, err := s.NewBox("u", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unshare([]NamespaceType{mustType(t, "user")}, UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	want, _, _, err := b.userMaps(false)
	if err != nil {
		t.Fatal(err)
	}
	if want.Outside == 0 {
		t.Fatalf("box root maps to host uid 0")
	}
	uidMap, _ := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", b.PID()))
	if got := strings.Join(strings.Fields(string(uidMap)), " "); got != want.String() {
		t.Errorf("uid_map %q, want %q", got, want)
	}
	var out bytes.Buffer
	es, err := b.Exec(context.Background(), []string{"sh", "-c", "id -u; sleep 0.3"}, nil, Stdio{Out: &out, Err: &out})
	if err != nil || es.Code != 0 {
		t.Fatalf("exec: %v %+v", err, es)
	}
	if strings.TrimSpace(out.String()) != "0" {
		t.Errorf("id -u inside = %q, want 0", out.String())
	}
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d", b.PID()), &st); err != nil {
		t.Fatal(err)
	}
	if int(st.Uid) != want.Outside {
		t.Errorf("the box process runs as host uid %d, want %d", st.Uid, want.Outside)
	}
}

// `unshare time` works on every kernel: the executor forks without
// CLONE_VM, which Linux before 6.3 refuses while time_for_children
// differs. The clock offset shows in the box.
func TestUnshareTimeForksWithoutCLONEVM(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	b, _, err := s.NewBox("clock", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unshare([]NamespaceType{mustType(t, "time"), mustType(t, "pid")}, UnshareOptions{Monotonic: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if nsInode(t, b.InitPID(), "time") == nsInode(t, os.Getpid(), "time") {
		t.Fatal("PID 1 is not in the new time namespace")
	}
	if out := run(t, b, "true"); out != "" {
		t.Errorf("true printed %q", out)
	}
}

// A command spawned by the box process after `unshare time` alone (the
// namespace waiting for its children) starts in the new time namespace:
// the spawn falls back to a copy where the kernel (before 6.3) refuses
// clone(CLONE_VM) there.
func TestACommandSpawnedAfterUnshareTimeRunsInTheNewTimeNamespace(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	b, _, err := s.NewBox("clock", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unshare([]NamespaceType{mustType(t, "time")}, UnshareOptions{Monotonic: time.Hour}); err != nil {
		t.Fatal(err)
	}
	host := fmt.Sprintf("time:[%d]\n", nsInode(t, os.Getpid(), "time"))
	out := run(t, b, "readlink", "/proc/self/ns/time")
	if !strings.HasPrefix(out, "time:[") || out == host {
		t.Fatalf("the command's time namespace is %q, the host's %q: want a new one", out, host)
	}
	if again := run(t, b, "readlink", "/proc/self/ns/time"); again != out {
		t.Errorf("a second command's time namespace is %q, the first's %q", again, out)
	}
}

// A message the executor cannot parse gets EBADMSG, and the box stays usable.
func TestExecutorRefusesAMalformedMessage(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	b, _, err := s.NewBox("bad", false)
	if err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	x := b.active()
	_, _, werr := x.c.c.WriteMsgUnix([]byte{1, 2, 3}, nil, nil)
	r, rerr := x.c.recv()
	b.mu.Unlock()
	if werr != nil || rerr != nil {
		t.Fatal(werr, rerr)
	}
	if r.errno() != unix.EBADMSG {
		t.Fatalf("a 3-byte message: errno %v, want EBADMSG", r.errno())
	}
	if out := run(t, b, "echo", "still here"); out != "still here\n" {
		t.Fatalf("after a malformed message: %q", out)
	}
}

// The session keeps no copy of an executor's socket: when the box's PID 1
// dies under a running command, the command's wait ends at once with the
// box reported gone, instead of waiting for ever.
func TestADeadInitIsNoticedAtOnce(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	b, _, err := s.NewBox("dies", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unshare([]NamespaceType{mustType(t, "pid")}, UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	init := b.InitPID() // Exec holds the box meanwhile
	done := make(chan error, 1)
	go func() {
		_, err := b.Exec(context.Background(), []string{"sleep", "1000"}, nil, Stdio{})
		done <- err
	}()
	for len(children(t, init)) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	if err := unix.Kill(init, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var gone *BoxGoneError
	if err := <-done; !errors.As(err, &gone) {
		t.Fatalf("exec while PID 1 was killed: %v, want the box reported gone", err)
	}
	if err := s.Remove("dies"); err != nil {
		t.Fatal(err)
	}
}

// PID 1 is a minimal init: a signal sent to it from the host goes on to
// the command it runs, as tini forwards it.
func TestPID1ForwardsSignalsToItsCommand(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	b, _, err := s.NewBox("fwd", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unshare([]NamespaceType{mustType(t, "pid")}, UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	init := b.InitPID() // Exec holds the box meanwhile
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	done := make(chan ExitStatus, 1)
	go func() {
		es, _ := b.Exec(context.Background(), []string{"sh", "-c", `trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 0.05; done`}, nil, Stdio{Out: w, Err: w})
		w.Close()
		done <- es
	}()
	buf := make([]byte, 64)
	if n, err := r.Read(buf); err != nil || string(buf[:n]) != "ready\n" {
		t.Fatalf("the command did not start: %q %v", buf[:n], err)
	}
	if err := unix.Kill(init, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	es := <-done
	rest, _ := io.ReadAll(r)
	if es.Code != 3 || !strings.Contains(string(rest), "got TERM") {
		t.Fatalf("after SIGTERM to PID 1 the command printed %q and exited %d, want its trap to run (exit 3)", rest, es.Code)
	}
	if err := b.Alive(); err != nil {
		t.Fatalf("PID 1 did not survive the signal it forwarded: %v", err)
	}
}

// `enter` joins from a single-threaded process (the constructor), so it
// may join the box's user namespace too, and there it is root.
func TestEnterJoinsAUserNamespace(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	b, _, err := s.NewBox("ue", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unshare([]NamespaceType{mustType(t, "user"), mustType(t, "uts")}, UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Sethostname("inside"); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	es, st, err := b.Enter(context.Background(), []NamespaceType{mustType(t, "user"), mustType(t, "uts")}, []string{"sh", "-c", "id -u; hostname"}, Stdio{Out: &out, Err: &out})
	if err != nil || es.Code != 0 {
		t.Fatalf("enter user uts: %v %+v\n%s", err, es, out.String())
	}
	if out.String() != "0\ninside\n" {
		t.Errorf("enter user uts printed %q, want uid 0 and the box's hostname", out.String())
	}
	for _, c := range st.Calls {
		if c.Result != "0" {
			t.Errorf("record: %s", c)
		}
	}
}

// A box with a user namespace of its own is entered whole: asked for its
// uts namespace only, the command still sits in the box's mount and
// network namespaces, never the host's, where a process with the box's
// uid and capabilities would hand the box the host's files through
// /proc/PID/root (a fresh attacker's finding).
func TestEnteringPartOfAUserNamespaceBoxJoinsAllItsNamespaces(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	b, _, err := s.NewBox("uw", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unshare([]NamespaceType{mustType(t, "uts"), mustType(t, "mnt"), mustType(t, "net"), mustType(t, "user")}, UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	es, _, err := b.Enter(context.Background(), []NamespaceType{mustType(t, "uts")}, []string{"sh", "-c", "readlink /proc/self/ns/mnt /proc/self/ns/net /proc/self/ns/user"}, Stdio{Out: &out, Err: &out})
	if err != nil || es.Code != 0 {
		t.Fatalf("enter uts: %v %+v\n%s", err, es, out.String())
	}
	var want []string
	for _, n := range []string{"mnt", "net", "user"} {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", b.PID(), n))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, l)
	}
	if got := strings.Fields(out.String()); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("enter uts in a box with its own user namespace is in %q, want the box's %q", got, want)
	}
}

// An image's Env reaches a box's commands only once the overlay is the
// box's root: before, the command is a host program, and an image's
// LD_PRELOAD or PATH would run the image's own code as the host's root
// (a fresh attacker's finding). Proved with a harmless variable.
func TestAnImagesEnvWaitsForTheBoxsOwnRoot(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	b, _, err := s.NewBox("ie", false)
	if err != nil {
		t.Fatal(err)
	}
	b.SetProcessDefaults(ProcessDefaults{Image: "test/env:1", Env: []string{"STEPBOX_TEST_IMAGE_VAR=from-the-image"}})
	var out bytes.Buffer
	if _, err := b.Exec(context.Background(), []string{"sh", "-c", "echo \"[$STEPBOX_TEST_IMAGE_VAR]\""}, nil, Stdio{Out: &out, Err: &out}); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out.String()); got != "[]" {
		t.Errorf("a host program in a box without its own root got the image's Env: %q", got)
	}
	b.mu.Lock()
	b.fs.Chrooted = true // as `chroot` leaves it: the image is the box's root
	a := b.execArgs(nil, nil)
	b.fs.Chrooted = false
	b.mu.Unlock()
	if !slices.Contains(a.Env, "STEPBOX_TEST_IMAGE_VAR=from-the-image") {
		t.Errorf("once the image is the box's root, its Env is missing: %q", a.Env)
	}
}
