package repl

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"stepbox/primitives/cgroups"
	"stepbox/primitives/step"
)

// A cgroup under the session's parent that no box of the session made is
// not stepbox's: at exit its process is left running and the cgroup in
// place, and the session says so, naming the cgroup and the process, and
// what to do (ut32 F1: `exit` SIGKILLed the process, silently). Planted
// as zz, and as b2.track, which a refused `new b2` found there already.
func TestExitLeavesACgroupNoBoxMadeAndItsProcessAndSaysSo(t *testing.T) {
	for _, name := range []string{"zz", "b2.track"} {
		t.Run(name, func(t *testing.T) {
			sh, out := liveShell(t)
			run(t, sh, out, "new a1")
			a1, err := sh.Session.Box("a1")
			if err != nil {
				t.Fatal(err)
			}
			g := a1.Tracked()
			if g == nil {
				t.Skip("this host gives stepbox no tracking cgroup")
			}
			dirs := append(slices.Clone(g.Track), g.Dirs...)
			var pid string
			var ended <-chan struct{}
			if name == "zz" {
				var parents []string
				for _, d := range dirs {
					parents = append(parents, filepath.Dir(d.Path))
				}
				pid, ended, _ = plant(t, parents, name)
			} else {
				pid, ended = plantedTrack(t, sh, out, dirs)
			}
			msg := tornDown(sh, "the session made")
			select {
			case <-ended:
				t.Fatalf("the sleep (PID %s) in the planted %s, not stepbox's, was ended at exit (%s)", pid, name, msg)
			case <-time.After(100 * time.Millisecond):
			}
			for _, d := range dirs {
				p := filepath.Join(filepath.Dir(d.Path), name)
				procs, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
				if err != nil || !slices.Contains(strings.Fields(string(procs)), pid) {
					t.Errorf("the planted cgroup %s after exit: %q, %v; want it there with the sleep %s", p, procs, err, pid)
				}
			}
			for _, want := range []string{"tearing down what the session made failed", "/" + name + " is not stepbox's", pid + ` ("sleep")`, "stepbox cleanup"} {
				if !strings.Contains(msg, want) {
					t.Errorf("exit says %q; want it to name %q", msg, want)
				}
			}
			if _, err := os.Stat("/proc/" + strconv.Itoa(a1.PID())); err == nil {
				t.Errorf("the box process %d of a1 outlived exit", a1.PID())
			}
		})
	}
}

// After a crash, `stepbox cleanup` ends the box's processes and counts
// them, and leaves a cgroup planted under the session's parent with its
// process, naming them; once they are gone, a second cleanup removes the
// parent (ut32 F1: cleanup SIGKILLed the planted process and said "0
// processes ended").
func TestCleanupLeavesACgroupNoBoxMadeAndCountsWhatItEnded(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	arg := "778." + strconv.Itoa(os.Getpid())
	dir := t.TempDir()
	cmd, w := startSession(t, dir, "new a1\nexec sh -c '/bin/sleep "+arg+" >/dev/null 2>&1 </dev/null &'\n")
	defer w.Close()
	var box []int
	for deadline := time.Now().Add(10 * time.Second); len(box) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the sleeper never started")
		}
		box = sleepers(t, arg)
	}
	// Planted where the box's tracking cgroup is: the trees that track
	// processes (a v1 cpuset cgroup takes none until it has CPUs).
	var parents []string
	for _, p := range sessionParents(t, dir) {
		if _, err := os.Stat(filepath.Join(p, "a1"+cgroups.TrackSuffix)); err == nil {
			parents = append(parents, p)
		}
	}
	if len(parents) == 0 {
		cmd.Process.Kill()
		cmd.Wait()
		exec.Command(stepboxBinary(t), "--state-dir", dir, "cleanup").Run()
		t.Skip("this host gives stepbox no parent cgroup")
	}
	pid, ended, planted := plant(t, parents, "zz")
	cmd.Process.Kill()
	cmd.Wait()
	// What cleanup must end and count: every process in the box's
	// cgroups, the session's, once the session's death has settled.
	var want []int
	for prev := -1; len(want) != prev; time.Sleep(200 * time.Millisecond) {
		prev, want = len(want), nil
		for _, p := range parents {
			want = append(want, pidsBelow(t, p, "zz")...)
		}
		slices.Sort(want)
		want = slices.Compact(want)
	}
	if !slices.Contains(want, box[0]) {
		t.Fatalf("the box's sleeper %d is in none of the session's cgroups %v: %v", box[0], parents, want)
	}
	out, err := exec.Command(stepboxBinary(t), "--state-dir", dir, "cleanup").CombinedOutput()
	want = withNamed(want, string(out))
	if err == nil {
		t.Errorf("cleanup succeeded with zz planted under the parent; want it to fail, naming zz:\n%s", out)
	}
	select {
	case <-ended:
		t.Fatalf("the sleep (PID %s) in the planted zz, not stepbox's, was ended by cleanup:\n%s", pid, out)
	case <-time.After(100 * time.Millisecond):
	}
	if left := sleepers(t, arg); len(left) > 0 {
		t.Errorf("the box's sleeper %v outlived cleanup:\n%s", left, out)
	}
	for _, s := range []string{step.Count(len(want), "process") + " ended", "/zz is not stepbox's", pid + ` ("sleep")`, "stepbox cleanup"} {
		if !strings.Contains(string(out), s) {
			t.Errorf("cleanup's report lacks %q (the session's cgroups held %v):\n%s", s, want, out)
		}
	}
	for _, p := range planted {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("the planted cgroup %s after cleanup: %v", p, err)
		}
	}
	// As the message says: end the process, remove the cgroup, cleanup.
	exec.Command("kill", "-9", pid).Run()
	<-ended
	for _, p := range planted {
		for try := 0; os.Remove(p) != nil && try < 50; try++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if out, err := exec.Command(stepboxBinary(t), "--state-dir", dir, "cleanup").CombinedOutput(); err != nil {
		t.Fatalf("cleanup once zz is gone: %v\n%s", err, out)
	}
	assertNoSessions(t, dir)
	for _, p := range parents {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("the session's parent %s is still there after the second cleanup", p)
		}
	}
}

// withNamed is pids and the processes a cleanup report names as ended
// (those the ledgers and the markers found; a process that was exiting
// already is in no cgroup), each once: what it ended.
func withNamed(pids []int, report string) []int {
	for _, m := range regexp.MustCompile(`(?m)^\s*ended PID (\d+) `).FindAllStringSubmatch(report, -1) {
		n, _ := strconv.Atoi(m[1])
		pids = append(pids, n)
	}
	slices.Sort(pids)
	return slices.Compact(pids)
}

// sessionParents finds the parent cgroup of the one session in state dir
// dir, in each cgroup tree it has one in.
func sessionParents(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "run", "sessions"))
	if err != nil || len(ents) != 1 {
		t.Fatalf("sessions in %s: %v, %v; want one", dir, ents, err)
	}
	name := cgroups.ParentName(ents[0].Name())
	var found []string
	filepath.WalkDir(cgroups.DefaultRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if d.Name() == name {
			found = append(found, p)
			return filepath.SkipDir
		}
		if strings.Count(strings.TrimPrefix(p, cgroups.DefaultRoot), "/") >= 4 {
			return filepath.SkipDir
		}
		return nil
	})
	return found
}

// pidsBelow lists the processes in the cgroups below parent, but not in
// the one called except.
func pidsBelow(t *testing.T, parent, except string) []int {
	var pids []int
	filepath.WalkDir(parent, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() || p == parent {
			return nil
		}
		if p == filepath.Join(parent, except) {
			return filepath.SkipDir
		}
		b, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				pids = append(pids, n)
			}
		}
		return nil
	})
	return pids
}
