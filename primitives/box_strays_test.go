package primitives

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A process in stepbox's parent cgroup itself, where none of stepbox's
// belongs, that is not by its ancestry, markers or namespaces box b's, is
// named by `rm b` and left alone while another box of the session, which
// ran a command in the host's PID namespace, could have started it; once
// no other box could have, `rm` of the last one ends it, saying so.
func TestRmNamesAStrayItCannotTellFromAnotherBoxsAndEndsOneOnlyItCouldOwn(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	a, _, err := s.NewBox("a", false)
	if err != nil {
		t.Fatal(err)
	}
	run(t, a, "true")
	b, _, err := s.NewBox("b", false)
	if err != nil {
		t.Fatal(err)
	}
	run(t, b, "true")
	parent := s.parentCgroup()
	if parent == nil || b.Tracked() == nil {
		t.Skip("no tracking cgroup on this host")
	}
	// The stray: the test's own, started after both boxes, with no marker.
	sleeper := exec.Command("sleep", "784")
	sleeper.Env = []string{}
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	for _, d := range append(slices.Clone(parent.Dirs), parent.Track...) {
		err := os.WriteFile(filepath.Join(d.Path, "cgroup.procs"), []byte(strconv.Itoa(sleeper.Process.Pid)), 0o644)
		if errors.Is(err, unix.EBUSY) {
			// cgroup v2 keeps processes out of a cgroup whose controllers
			// are on for its children: a box makes a child of its own.
			sub := filepath.Join(d.Path, "stray")
			if err := os.Mkdir(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Remove(sub) })
			err = os.WriteFile(filepath.Join(sub, "cgroup.procs"), []byte(strconv.Itoa(sleeper.Process.Pid)), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	stray := pidStart{sleeper.Process.Pid, 0}
	stray.start, _ = startTime(stray.pid)

	err = s.Remove("b")
	if err == nil || !strings.Contains(err.Error(), "left PID "+strconv.Itoa(stray.pid)+` ("sleep") alone in cgroup `) || !strings.Contains(err.Error(), "/"+parent.Name) || !strings.Contains(err.Error(), "(stepbox's own and no box's") {
		t.Fatalf("rm b: %v, want the stray %d named", err, stray.pid)
	}
	if err := running(sleeper); err != nil {
		t.Fatalf("rm b ended the stray %d, which box a may have started: %v", stray.pid, err)
	}
	err = s.Remove("a")
	if err == nil || !strings.Contains(err.Error(), "ended PID "+strconv.Itoa(stray.pid)+` ("sleep") of box a (no other box of the session could have started it)`) {
		t.Fatalf("rm a: %v, want the stray %d ended and named", err, stray.pid)
	}
	sleeper.Wait()
	if !gone(stray) {
		t.Fatalf("the stray %d outlived rm a, the only box that could have started it", stray.pid)
	}
}

// BenchmarkRmOfABoxWithAHostPIDCommand times `rm` of a box that ran a
// command in the host's PID namespace, beside two other boxes: the case
// that looks for strays in the session's cgroups (a box whose commands
// all ran in its own PID namespace never does).
func BenchmarkRmOfABoxWithAHostPIDCommand(bm *testing.B) {
	rootForBench(bm)
	s, _ := benchSession(bm)
	for _, name := range []string{"a", "c"} {
		o, _, err := s.NewBox(name, false)
		if err != nil {
			bm.Fatal(err)
		}
		if _, err := o.Exec(context.Background(), []string{"true"}, nil, Stdio{}); err != nil {
			bm.Fatal(err)
		}
	}
	for i := 0; i < bm.N; i++ {
		bm.StopTimer()
		name := "b" + strconv.Itoa(i)
		b, _, err := s.NewBox(name, false)
		if err != nil {
			bm.Fatal(err)
		}
		if _, err := b.Exec(context.Background(), []string{"true"}, nil, Stdio{}); err != nil {
			bm.Fatal(err)
		}
		bm.StartTimer()
		if err := s.Remove(name); err != nil {
			bm.Fatal(err)
		}
	}
}
