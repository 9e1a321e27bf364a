package cgroups

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// cgroupTree lists every cgroup directory under DefaultRoot.
func cgroupTree(t *testing.T) []string {
	t.Helper()
	var dirs []string
	filepath.WalkDir(DefaultRoot, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	slices.Sort(dirs)
	return dirs
}

// stepbox asks systemd for a scope exactly where systemd runs the host on
// cgroup v2. There (the systemd VM), against the host's own systemd: a
// transient scope with Delegate=yes and TasksMax for a throw-away process,
// a cgroup made inside it (what delegation allows), then the scope
// stopped: the process is ended, and the host's cgroup tree is as it was.
// Nowhere else does this test touch systemd (on a hybrid host a scope
// would live in the v1 name=systemd tree: stepbox makes none there).
func TestScopeOverTheRealBusIsMadeAndStoppedWithoutATrace(t *testing.T) {
	mode, err := Detect(DefaultRoot)
	if err != nil {
		t.Fatal(err)
	}
	sd := HostSystemd()
	if want := mode == Unified && exists("/run/systemd/system"); (sd != nil) != want {
		t.Fatalf("HostSystemd() = %v on a %s host (systemd running it: %v)", sd, mode, exists("/run/systemd/system"))
	}
	if sd == nil {
		return
	}
	if _, err := sd.Ping(); err != nil {
		t.Fatalf("the %s bus: %v", sd.Bus(), err)
	}
	before := cgroupTree(t)
	sleeper := exec.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleeper.Process.Kill(); sleeper.Wait() }()
	unit := ScopeUnit(fmt.Sprintf("test-%d", sleeper.Process.Pid))
	slice := "system.slice"
	if sd.Bus() == "user" {
		slice = "app.slice"
	}
	if err := sd.StartScope(unit, slice, sleeper.Process.Pid, 64); err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			sd.StopScope(unit)
		}
	}()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", sleeper.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	cg := strings.TrimPrefix(strings.TrimSpace(string(raw)), "0::")
	if filepath.Base(cg) != unit {
		t.Fatalf("the process is in %s, want the scope %s", cg, unit)
	}
	dir := filepath.Join(DefaultRoot, cg)
	if max, _ := readFile(filepath.Join(dir, "pids.max")); max != "64" {
		t.Errorf("the scope's pids.max is %q, want TasksMax 64", max)
	}
	inner := filepath.Join(dir, "inner")
	if err := os.Mkdir(inner, 0o755); err != nil {
		t.Errorf("mkdir inside the delegated scope: %v", err)
	}
	if err := sd.StopScope(unit); err != nil {
		t.Fatal(err)
	}
	stopped = true
	if err := sleeper.Wait(); err == nil {
		t.Errorf("the scope's process was not ended by the stop")
	}
	if exists(dir) {
		t.Errorf("the scope's cgroup %s is still there", dir)
	}
	if err := sd.StopScope(unit); err != nil {
		t.Errorf("stopping a scope that is gone: %v, want no error", err)
	}
	if after := cgroupTree(t); !slices.Equal(before, after) {
		t.Errorf("the host's cgroup tree changed: %d directories before, %d after", len(before), len(after))
	}
}
