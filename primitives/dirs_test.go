package primitives

import "testing"

// $STATE is the --state-dir that holds both dirs, else the runtime dir.
func TestStateIsTheStateDirOrTheRuntimeDir(t *testing.T) {
	d, err := DefaultDirs("/tmp/class")
	if err != nil {
		t.Fatal(err)
	}
	if got := d.State(); got != "/tmp/class" {
		t.Errorf("--state-dir /tmp/class: $STATE is %q", got)
	}
	if got := (Dirs{Run: "/run/stepbox", Lib: "/var/lib/stepbox"}).State(); got != "/run/stepbox" {
		t.Errorf("the default dirs: $STATE is %q, want /run/stepbox", got)
	}
	if got := (Dirs{Run: "/a/run", Lib: "/b/lib"}).State(); got != "/a/run" {
		t.Errorf("dirs under different parents: $STATE is %q, want /a/run", got)
	}
}
