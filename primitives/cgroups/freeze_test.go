package cgroups

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A box's process frozen in a cgroup the box made below its own, with
// stepbox's parent frozen too (v1 freezer.state; cgroup.freeze where the
// host has only cgroup2): Kill thaws both and ends it, where SIGKILL
// alone leaves a v1-frozen task as it is (ut27 F2).
func TestKillEndsAProcessAFreezeHolds(t *testing.T) {
	h := openHost(t)
	parent := newSession(t, h)
	box, _, err := h.Create(parent, "web", "")
	if err != nil {
		t.Fatal(err)
	}
	// The directories that freeze: the box's and the parent's, in the
	// freezer hierarchy (v1) or the one tree (v2).
	var boxDir, parentDir, file, frozen, thawed string
	for i, d := range box.Dirs {
		if exists(filepath.Join(d.Path, v1State)) {
			boxDir, parentDir, file, frozen, thawed = d.Path, parent.Dirs[i].Path, v1State, "FROZEN", "THAWED"
		}
	}
	if boxDir == "" && exists(filepath.Join(box.Dirs[0].Path, v2Freeze)) {
		boxDir, parentDir, file, frozen, thawed = box.Dirs[0].Path, parent.Dirs[0].Path, v2Freeze, "1", "0"
	}
	if boxDir == "" {
		t.Skip("no cgroup freezer on this host")
	}
	inner := filepath.Join(boxDir, "inner")
	if err := os.Mkdir(inner, 0o755); err != nil {
		t.Fatal(err)
	}
	sleeper := exec.Command("sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { sleeper.Wait(); close(done) }()
	// Thawed before anything else at clean-up: only this test's cgroups.
	t.Cleanup(func() {
		for _, d := range []string{parentDir, inner} {
			os.WriteFile(filepath.Join(d, file), []byte(thawed), 0)
		}
		sleeper.Process.Kill()
		<-done
	})
	if _, err := h.Attach(box, sleeper.Process.Pid); err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(sleeper.Process.Pid)
	if err := os.WriteFile(filepath.Join(inner, "cgroup.procs"), []byte(pid), 0); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{inner, parentDir} {
		if err := os.WriteFile(filepath.Join(d, file), []byte(frozen), 0); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); Frozen(sleeper.Process.Pid) == ""; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the sleeper never got frozen")
		}
	}
	_, left, err := Kill(box)
	if err != nil {
		t.Errorf("Kill: %v", err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("the frozen sleeper survived Kill (survivors %v)", left)
	}
	for _, d := range []string{inner, parentDir} {
		if v, _ := readFile(filepath.Join(d, file)); v != thawed {
			t.Errorf("%s reads %s after Kill, want %s", filepath.Join(d, file), v, thawed)
		}
	}
}

// Thaw looks for freezes only where one can be set: a v1 hierarchy with
// the freezer controller, and cgroup2. No cgroup of another v1 hierarchy
// (memory, pids, name=systemd) has a freezer file, and walking each of
// them, on every rm, was most of rm's time. Plain directories stand in for
// a group's directory, each with a cgroup below it, both holding the v1
// freezer's files of a cgroup that froze itself: only those in a
// hierarchy with a freezer are thawed.
func TestThawLooksOnlyWhereAFreezeCanBe(t *testing.T) {
	for _, c := range []struct {
		hierarchy string
		looked    bool
	}{
		{"freezer", true}, {"devices,freezer", true}, {"", true},
		{"memory", false}, {"cpu,cpuacct", false}, {"name=systemd", false},
	} {
		dir := t.TempDir()
		inner := filepath.Join(dir, "inner")
		if err := os.Mkdir(inner, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{dir, inner} {
			for f, v := range map[string]string{v1Self: "1\n", v1State: "FROZEN\n"} {
				if err := os.WriteFile(filepath.Join(d, f), []byte(v), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		thawed, err := Thaw(nil, &Group{Name: "web", Dirs: []Dir{{Hierarchy: c.hierarchy, Path: dir}}})
		if err != nil {
			t.Fatalf("%q: %v", c.hierarchy, err)
		}
		want, wantThawed := "FROZEN", []string(nil)
		if c.looked {
			want, wantThawed = "THAWED", []string{dir, inner}
		}
		for _, d := range []string{dir, inner} {
			if got, _ := readFile(filepath.Join(d, v1State)); !strings.HasPrefix(got, want) {
				t.Errorf("hierarchy %q: %s reads %q after Thaw, want %s", c.hierarchy, filepath.Join(d, v1State), got, want)
			}
		}
		if !slices.Equal(thawed, wantThawed) {
			t.Errorf("hierarchy %q: Thaw says it thawed %q, want %q", c.hierarchy, thawed, wantThawed)
		}
	}
}
