package repl

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"stepbox/primitives/cgroups"
)

// A NAME.track planted under the session's parent, with a process in it
// that is not stepbox's, makes `new NAME` refuse to start the box; the
// undo that follows touches only what `new` made: the planted cgroup and
// its process are left as they were (ut31 F6: the process was SIGKILLed
// and the cgroup removed). Planted in every tracking hierarchy, `new`
// makes none; planted in the last alone (hybrid: pids), it has made the
// others first, and removes only those.
func TestNewRefusingAPlantedTrackingCgroupLeavesItAndItsProcessAlone(t *testing.T) {
	for _, only := range []bool{false, true} {
		t.Run(map[bool]string{false: "every hierarchy", true: "the last hierarchy"}[only], func(t *testing.T) {
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
			// MakeTrack's order: tracking-only trees, then hierarchies.
			dirs := append(slices.Clone(g.Track), g.Dirs...)
			if only {
				// On a pure v2 host the last is the only one, as above.
				dirs = dirs[len(dirs)-1:]
			}
			plantedTrack(t, sh, out, dirs)
		})
	}
}

// plantedTrack plants b2.track beside each of dirs with a sleep of the
// test's in it, runs `new b2`, and checks both are left alone. It
// returns the sleep's PID and a channel closed when it has ended.
func plantedTrack(t *testing.T, sh *Shell, out *bytes.Buffer, dirs []cgroups.Dir) (string, <-chan struct{}) {
	var parents []string
	for _, d := range dirs {
		parents = append(parents, filepath.Dir(d.Path))
	}
	pid, ended, planted := plant(t, parents, "b2"+cgroups.TrackSuffix)
	out.Reset()
	err := sh.Execute(context.Background(), "new b2")
	if err == nil || !strings.Contains(err.Error(), "could not be made fresh") || !strings.Contains(err.Error(), "b2.track") {
		t.Fatalf("new b2 with b2.track planted: %v, want it refused naming the cgroup:\n%s", err, out)
	}
	select {
	case <-ended:
		t.Fatalf("the sleep (PID %s) in the planted b2.track, not stepbox's, was ended by the refused new b2", pid)
	case <-time.After(100 * time.Millisecond):
	}
	for _, p := range planted {
		procs, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			t.Errorf("the planted cgroup %s after the refused new b2: %v", p, err)
			continue
		}
		if !slices.Contains(strings.Fields(string(procs)), pid) {
			t.Errorf("the planted cgroup %s no longer holds the sleep (PID %s): %q", p, pid, procs)
		}
	}
	return pid, ended
}

// plant makes a cgroup called name in each of the parent directories,
// stepbox's parent in each of its trees, and puts a sleep of the test's
// in each: a process with none of stepbox's markers. It returns the
// sleep's PID, a channel closed when it has ended, and the cgroups. The
// cleanup ends the sleep and removes them: it runs before the session
// closes (liveShell's cleanup came first), as the planted cgroups must be
// gone before the session's parent can be removed.
func plant(t *testing.T, parents []string, name string) (pid string, ended chan struct{}, planted []string) {
	t.Helper()
	sleep := exec.Command("sleep", "600")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	ended = make(chan struct{})
	go func() { sleep.Wait(); close(ended) }()
	t.Cleanup(func() {
		sleep.Process.Kill()
		<-ended
		for _, p := range slices.Backward(planted) {
			// The killed sleep leaves its cgroups as it exits: retry briefly.
			for try := 0; ; try++ {
				err := os.Remove(p)
				if err == nil || os.IsNotExist(err) || try == 50 {
					if err != nil && !os.IsNotExist(err) {
						t.Errorf("remove the planted cgroup %s: %v", p, err)
					}
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	})
	pid = strconv.Itoa(sleep.Process.Pid)
	for _, parent := range parents {
		p := filepath.Join(parent, name)
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		planted = append(planted, p)
		if err := os.WriteFile(filepath.Join(p, "cgroup.procs"), []byte(pid), 0); err != nil {
			t.Fatal(err)
		}
	}
	return pid, ended, planted
}
