package primitives

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"stepbox/primitives/cgroups"
)

// trackedPIDs lists the processes in the box's tracking cgroup, in every
// tree it spans.
func trackedPIDs(t *testing.T, b *Box) []int {
	t.Helper()
	g := b.Tracked()
	if g == nil {
		t.Fatal("the box has no tracking cgroup")
	}
	var pids []int
	for _, d := range append(slices.Clone(g.Dirs), g.Track...) {
		raw, err := os.ReadFile(filepath.Join(d.Path, "cgroup.procs"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range strings.Fields(string(raw)) {
			pid, _ := strconv.Atoi(f)
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	return slices.Compact(pids)
}

// unmarkedSleeper starts the escape in b, a box without a PID
// namespace: a daemon with an empty environment (no stepbox marker),
// re-parented away from the command, and returns its host PID, found in
// the box's tracking cgroup.
func unmarkedSleeper(t *testing.T, b *Box) pidStart {
	t.Helper()
	run(t, b, "sh", "-c", "env -i /bin/sleep 777 >/dev/null 2>&1 </dev/null &")
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, pid := range trackedPIDs(t, b) {
			p, err := procfs.NewProc(pid)
			if err != nil {
				continue
			}
			if cmd, _ := p.CmdLine(); len(cmd) == 2 && cmd[0] == "/bin/sleep" && cmd[1] == "777" {
				if env, _ := p.Environ(); len(env) != 0 {
					t.Fatalf("the sleeper's environment is %q, want it empty", env)
				}
				st, _ := p.Stat()
				return pidStart{pid, st.Starttime}
			}
		}
	}
	t.Fatalf("the sleeper never showed in the box's tracking cgroup: %v", trackedPIDs(t, b))
	return pidStart{}
}

// gone waits for p to have ended: no such process, a new one with its
// PID, or a zombie that the host's init will reap.
func gone(p pidStart) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		proc, err := procfs.NewProc(p.pid)
		if err != nil {
			return true
		}
		st, err := proc.Stat()
		if err != nil || st.Starttime != p.start || st.State == "Z" {
			return true
		}
	}
	return false
}

// Issue 15 item 3: a process that cleared its environment (so no marker
// names it) and left its parent is ended by `rm` and by `exit`, because it
// cannot leave the cgroup stepbox put the box in at `new`.
func TestTeardownEndsAProcessThatShedItsMarkers(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	for _, how := range []string{"rm", "exit"} {
		b, st, err := s.NewBox("shed", false)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(st.Notes, "\n"), "a cgroup of its own") {
			t.Errorf("`new` does not say where stepbox tracks the box: %q", st.Notes)
		}
		if b.Cgroup() != nil {
			t.Fatalf("the box has a cgroup of the learner's before `cgroup new`: %s", b.Cgroup().Name)
		}
		if pids := trackedPIDs(t, b); !slices.Contains(pids, b.PID()) {
			t.Fatalf("the box process %d is not in its tracking cgroup: %v", b.PID(), pids)
		}
		sleeper := unmarkedSleeper(t, b)
		if slices.ContainsFunc(markedProcesses(s.ID, "shed"), func(p pidStart) bool { return p.pid == sleeper.pid }) {
			t.Fatal("the sleeper still carries the box's marker: the test proves nothing")
		}
		tracked := b.Tracked()
		if how == "rm" {
			err = s.Remove("shed")
		} else {
			err = s.Close()
		}
		if err != nil {
			t.Fatalf("%s: %v", how, err)
		}
		if !gone(sleeper) {
			t.Fatalf("%s: the unmarked sleeper %d survived", how, sleeper.pid)
		}
		for _, d := range append(slices.Clone(tracked.Dirs), tracked.Track...) {
			if _, err := os.Stat(d.Path); !os.IsNotExist(err) {
				t.Errorf("%s: the tracking cgroup %s is still there: %v", how, d.Path, err)
			}
		}
	}
}

// parentPids is the pids directory of the session's parent cgroup.
func parentPids(t *testing.T, s *Session) string {
	t.Helper()
	s.mu.Lock()
	parent := s.parent
	s.mu.Unlock()
	if parent == nil {
		t.Fatal("the session has no parent cgroup")
	}
	for _, d := range parent.Dirs {
		if slices.Contains(d.Controllers, cgroups.Pids) {
			return d.Path
		}
	}
	t.Skip("no pids controller reaches stepbox's parent here")
	return ""
}

func readCount(t *testing.T, file, key string) int {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if key == "" && len(f) == 1 || len(f) == 2 && f[0] == key {
			n, _ := strconv.Atoi(f[len(f)-1])
			return n
		}
	}
	t.Fatalf("%s has no %q: %q", file, key, raw)
	return 0
}

// Issue 15 item 4: a fork bomb in a box without a cgroup of the learner's
// stops at stepbox's limit, which is on before the box runs anything; the
// session, outside it, still starts threads and processes, and tears the
// box down.
func TestAForkBombInABoxStopsAtStepboxsLimit(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	b, _, err := s.NewBox("bomb", false)
	if err != nil {
		t.Fatal(err)
	}
	dir := parentPids(t, s)
	if max, _ := os.ReadFile(filepath.Join(dir, "pids.max")); strings.TrimSpace(string(max)) != strconv.Itoa(cgroups.SessionPidsMax) {
		t.Fatalf("pids.max of stepbox's parent is %q before the bomb, want %d", max, cgroups.SessionPidsMax)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.Exec(ctx, []string{"sh", "-c", "b() { b | b & }; b"}, nil, Stdio{})
	// The bomb must keep growing until the limit refuses a fork: it fails
	// when pids.current stops rising for 30 s, not at a fixed time, since
	// a busy host under software emulation (the VM) can take minutes.
	stalled := 30 * time.Second
	last, lastRise := -1, time.Now()
	// v1 counts a refused fork in the forking cgroup's pids.events, v2 in
	// the one whose limit refused it: the box's tracking cgroup or the
	// parent.
	refused := func() int {
		n := readCount(t, filepath.Join(dir, "pids.events"), "max")
		for _, d := range b.Tracked().Dirs {
			if _, err := os.Stat(filepath.Join(d.Path, "pids.events")); err == nil {
				n += readCount(t, filepath.Join(d.Path, "pids.events"), "max")
			}
		}
		return n
	}
	for refused() == 0 {
		if n := readCount(t, filepath.Join(dir, "pids.current"), ""); n > last {
			last, lastRise = n, time.Now()
		}
		if time.Since(lastRise) > stalled {
			t.Fatalf("the bomb stopped growing below the limit: pids.current %d for %s", last, stalled)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := readCount(t, filepath.Join(dir, "pids.current"), ""); n > cgroups.SessionPidsMax {
		t.Errorf("pids.current %d is past the limit %d", n, cgroups.SessionPidsMax)
	}
	// The session makes threads (a Go runtime that cannot aborts) and
	// starts processes while the bomb is at its limit.
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // never unlocked: the runtime makes a new thread for others
		}()
	}
	wg.Wait()
	if out, err := os.ReadFile("/proc/self/status"); err != nil || !strings.Contains(string(out), "Threads:") {
		t.Fatalf("the session cannot read its own status: %v", err)
	}
	if _, _, err := s.NewBox("after", false); err != nil {
		t.Fatalf("a second box during the bomb: %v", err)
	}
	tracked := b.Tracked()
	if err := s.Remove("bomb"); err != nil {
		t.Fatalf("rm during the bomb: %v", err)
	}
	for _, d := range append(slices.Clone(tracked.Dirs), tracked.Track...) {
		if _, err := os.Stat(d.Path); !os.IsNotExist(err) {
			t.Errorf("the bomb's tracking cgroup %s is still there: %v", d.Path, err)
		}
	}
	// A killed task stays charged in pids.current until its parent reaps
	// it: the bomb's orphans go to the PID namespace's init, which in
	// `make test-container` is the go command, and it reaps no orphan.
	// So count what is alive: cgroup.procs lists no task that has exited.
	n := liveUnder(t, dir)
	for deadline := time.Now().Add(20 * time.Second); n > 4 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		n = liveUnder(t, dir)
	}
	if n > 4 {
		t.Errorf("%d processes still live under stepbox's parent 20 s after rm: the bomb was not ended", n)
	}
}

// liveUnder counts the processes in the cgroup at dir and below it.
func liveUnder(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		n += len(strings.Fields(string(b)))
		return nil
	})
	return n
}

// A box with every privilege of host root can leave stepbox's tracking
// cgroup by writing its PID to another cgroup (here one the test made).
// If it also cleared its markers, teardown still finds it by the box's
// own mount namespace, ends it, and names it.
func TestTeardownNamesAndEndsAProcessThatLeftTheTrackingCgroup(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	b, _, err := s.NewBox("esc", false)
	if err != nil {
		t.Fatal(err)
	}
	// A cgroup outside stepbox's parent in every tree the box is tracked in.
	elsewhere := otherCgroups(t, b, "escape-test")
	if elsewhere == nil {
		t.Skip("no tracking cgroup on this host")
	}
	if _, err := b.Unshare([]NamespaceType{mustType(t, "mnt")}, UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	run(t, b, "sh", "-c", leaveAndSleep(elsewhere, "778"))
	sleeper := inCgroup(t, elsewhere[0], "778")
	escaped := sleeper.pid
	err = s.Remove("esc")
	if err == nil || !strings.Contains(err.Error(), strconv.Itoa(escaped)+` ("sleep", in the box's mnt namespace)`) {
		t.Fatalf("rm: %v, want the escaped sleeper %d named", err, escaped)
	}
	if !gone(sleeper) {
		t.Fatalf("the escaped sleeper %d survived rm", escaped)
	}
}

// A namespace's inode number goes to the next namespace made on the host
// once its last reference is gone. Teardown holds the box's namespaces
// while it looks for escapees, so a process that made a namespace after
// the box's processes died is never taken for one of the box's.
func TestEscapeesAreNotAProcessInANamespaceMadeAfterTheBoxDied(t *testing.T) {
	needRoot(t)
	box := exec.Command("unshare", "--uts", "sleep", "60")
	if err := box.Start(); err != nil {
		t.Fatal(err)
	}
	waitForOwnNamespace(t, box.Process.Pid, "uts")
	pin := pinNamespaces(box.Process.Pid)
	defer pin.release()
	ns := pin.ns
	if _, ok := ns["uts"]; !ok {
		t.Fatalf("pinNamespaces(%d) = %v: no uts namespace of its own", box.Process.Pid, ns)
	}
	box.Process.Kill()
	box.Wait()
	stranger := exec.Command("unshare", "--uts", "sleep", "60")
	if err := stranger.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stranger.Process.Kill(); stranger.Wait() })
	waitForOwnNamespace(t, stranger.Process.Pid, "uts")
	if got, _ := nsOf(strconv.Itoa(stranger.Process.Pid), "uts"); got == ns["uts"] {
		t.Fatalf("the new uts namespace has the number of the box's, %v, while teardown holds it", got)
	}
	if esc, err := escapees("gone", t.TempDir(), 0, ns, nil, true); err != nil || len(esc.ended) > 0 {
		t.Errorf("escapees: %v, ended %q", err, esc.ended)
	}
	if err := unix.Kill(stranger.Process.Pid, 0); err != nil {
		t.Errorf("kill(%d, 0): %v: teardown ended a process that was never the box's", stranger.Process.Pid, err)
	}
}

// waitForOwnNamespace waits until pid (started by unshare(1)) is in a
// namespace of type t other than the test's own.
func waitForOwnNamespace(t *testing.T, pid int, typ string) {
	t.Helper()
	self, err := nsOf("self", typ)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if got, err := nsOf(strconv.Itoa(pid), typ); err == nil && got != self {
			return
		}
	}
	t.Fatalf("PID %d is still in the test's %s namespace after 5 s", pid, typ)
}
