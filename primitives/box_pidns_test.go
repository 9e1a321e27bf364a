package primitives

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/procfs"
)

// hasHostPIDLine says whether box b's ledger says a command of it started
// in the host's PID namespace.
func hasHostPIDLine(t *testing.T, b *Box) bool {
	t.Helper()
	res, err := readLedger(filepath.Join(b.Dir, "ledger.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(res, func(r Resource) bool { return r.Kind == ResHostPID })
}

// sleeperIn finds the live process running `sleep arg` whose PID
// namespace is PID 1's, by host PID.
func sleeperIn(t *testing.T, init int, arg string) pidStart {
	t.Helper()
	ns, err := nsOf(strconv.Itoa(init), "pid")
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		procs, _ := procfs.AllProcs()
		for _, p := range procs {
			cmd, _ := p.CmdLine()
			if len(cmd) != 2 || !strings.HasSuffix(cmd[0], "sleep") || cmd[1] != arg {
				continue
			}
			if got, err := nsOf(strconv.Itoa(p.PID), "pid"); err == nil && got == ns {
				st, _ := p.Stat()
				return pidStart{p.PID, st.Starttime}
			}
		}
	}
	t.Fatalf("no `sleep %s` in the PID namespace of PID 1 (%d)", arg, init)
	return pidStart{}
}

// otherCgroups makes, for the test, a cgroup outside stepbox's parent in
// every tree box b is tracked in, and returns them; nil where the host
// gives no tracking cgroup.
func otherCgroups(t *testing.T, b *Box, name string) []string {
	t.Helper()
	g := b.Tracked()
	if g == nil {
		return nil
	}
	var dirs []string
	for _, d := range append(slices.Clone(g.Dirs), g.Track...) {
		dir := filepath.Join(filepath.Dir(filepath.Dir(d.Path)), name+"-"+strconv.Itoa(os.Getpid()))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, dir)
		t.Cleanup(func() { os.Remove(dir) })
	}
	return dirs
}

// leaveAndSleep is a command for the box's shell: a daemon in a session
// of its own that writes its PID to each cgroup of dirs (a box with host
// root's rights may) and becomes `sleep arg` with an empty environment.
func leaveAndSleep(dirs []string, arg string) string {
	var moves []string
	for _, dir := range dirs {
		moves = append(moves, "echo $$ > "+dir+"/cgroup.procs")
	}
	return "(setsid sh -c '" + strings.Join(moves, "; ") + "; exec env -i /bin/sleep " + arg + "' >/dev/null 2>&1 </dev/null &)"
}

// inCgroup finds the process running `sleep arg` in the cgroup at dir.
func inCgroup(t *testing.T, dir, arg string) pidStart {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		raw, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		for _, f := range strings.Fields(string(raw)) {
			pid, _ := strconv.Atoi(f)
			if p, err := procfs.NewProc(pid); err == nil {
				if cmd, _ := p.CmdLine(); len(cmd) == 2 && cmd[1] == arg {
					st, _ := p.Stat()
					return pidStart{pid, st.Starttime}
				}
			}
		}
	}
	t.Fatalf("`sleep %s` never reached %s", arg, dir)
	return pidStart{}
}

// A box whose commands all started in its own PID namespace leaves
// nothing once its PID 1 is gone: the kernel ends every process in the
// namespace with it, a daemon with no markers included. `rm` then reads no
// other process: a process outside the box carrying the box's markers,
// which only a search would find, is left as it is.
func TestRmOfABoxWhoseCommandsRanInItsPIDNamespaceSearchesNoOtherProcess(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	b, _, err := s.NewBox("inns", false)
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := otherCgroups(t, b, "escape-inns")
	if _, err := b.Unshare([]NamespaceType{mustType(t, "pid")}, UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	run(t, b, "sh", "-c", leaveAndSleep(elsewhere, "781"))
	daemon := sleeperIn(t, b.InitPID(), "781")
	if len(elsewhere) > 0 && inCgroup(t, elsewhere[0], "781") != daemon {
		t.Fatal("the daemon is not the one that left the tracking cgroup")
	}
	if hasHostPIDLine(t, b) {
		t.Fatal("the ledger says a command started in the host's PID namespace: every one started in the box's")
	}
	// Not the box's: the test's own child, with the box's markers.
	stranger := markedSleeper(t, s.ID, "inns", false)
	if err := s.Remove("inns"); err != nil {
		t.Fatalf("rm: %v", err)
	}
	if !gone(daemon) {
		t.Fatalf("the box's daemon %d outlived its PID namespace", daemon.pid)
	}
	if err := running(stranger); err != nil {
		t.Errorf("rm searched every process and ended %d, which was never in the box: %v", stranger.Process.Pid, err)
	}
}

// A command started before `unshare pid` is a process of the host's PID
// namespace: the box's PID 1 does not take it along. The ledger says so
// before it starts, and `rm` searches for it: one that left stepbox's
// tracking cgroup and cleared its markers is still found in the box's
// namespaces, ended and named.
func TestRmFindsACommandStartedBeforeUnsharePIDThatLeftTheTrackingCgroup(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	b, _, err := s.NewBox("early", false)
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := otherCgroups(t, b, "escape-early")
	if elsewhere == nil {
		t.Skip("no tracking cgroup on this host")
	}
	if _, err := b.Unshare([]NamespaceType{mustType(t, "mnt")}, UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	if hasHostPIDLine(t, b) {
		t.Fatal("the ledger says a command started before any did")
	}
	run(t, b, "sh", "-c", leaveAndSleep(elsewhere, "782"))
	if !hasHostPIDLine(t, b) {
		t.Fatal("a command started in the host's PID namespace and the ledger does not say so")
	}
	escaped := inCgroup(t, elsewhere[0], "782")
	if _, err := b.Unshare([]NamespaceType{mustType(t, "pid")}, UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	err = s.Remove("early")
	if err == nil || !strings.Contains(err.Error(), strconv.Itoa(escaped.pid)+` ("sleep", in the box's mnt namespace)`) {
		t.Fatalf("rm: %v, want the escaped sleeper %d named", err, escaped.pid)
	}
	if !gone(escaped) {
		t.Fatalf("the escaped sleeper %d survived rm", escaped.pid)
	}
}

// `enter` with the box's PID namespace starts its command there, where
// PID 1 takes it along; without it, the command is a process of the
// host's PID namespace, and the ledger says so before it starts.
func TestEnterWithoutTheBoxsPIDNamespaceIsWrittenToTheLedger(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	b, _, err := s.NewBox("entered", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unshare([]NamespaceType{mustType(t, "uts"), mustType(t, "pid")}, UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		types []NamespaceType
		want  bool
	}{
		{[]NamespaceType{mustType(t, "uts"), mustType(t, "pid")}, false},
		{[]NamespaceType{mustType(t, "uts")}, true},
	} {
		es, _, err := b.Enter(context.Background(), c.types, []string{"true"}, Stdio{Out: discard{}, Err: discard{}})
		if err != nil || es.Code != 0 {
			t.Fatalf("enter %v: %v, exit %d", c.types, err, es.Code)
		}
		if got := hasHostPIDLine(t, b); got != c.want {
			t.Errorf("after enter %v, the ledger's host-PID line is there: %v, want %v", c.types, got, c.want)
		}
	}
}
