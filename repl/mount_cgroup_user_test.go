package repl

import (
	"path/filepath"
	"strings"
	"testing"
)

// ut34 F7: `mount cgroup` in a `--user` box after pivot_root failed with
// a bare mkdir("/sys/fs") EACCES: /sys is the base layer's, owned by a
// root the box's user namespace does not map. The error says so and what
// to do, and doing it (`unshare cgroup`, a tmpfs at /sys) mounts cgroup.
func TestMountCgroupUnderTheLayersSysSaysWhy(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := boxTempDir(t)
	script := "new u --user\nunshare mnt pid\nmount overlay base\npivot_root\n-mount cgroup\nunshare cgroup\nmount tmpfs /sys\nmount cgroup\nexec ls /sys/fs/cgroup\n"
	out, code := runStepboxAt(t, 4000, filepath.Join(dir, "state"), script, "--plain")
	if code != 0 {
		t.Fatalf("exit %d: the advice did not mount cgroup:\n%s", code, out)
	}
	f := flat(out)
	for _, w := range []string{
		`error: mount cgroup: mkdir("/sys/fs", 0755): EACCES`,
		"why: /sys, where `mount cgroup` makes /sys/fs/cgroup, is the base layer's: the layers' files belong to the host's root, whom the box's user namespace does not map",
		"do: `unshare cgroup` (in a user namespace the kernel mounts cgroup only for a cgroup namespace the box owns), then give /sys a filesystem the box's root owns: `mount tmpfs /sys`, then `mount cgroup`",
		"✓ mounted cgroup at /sys/fs/cgroup inside box u",
	} {
		if !strings.Contains(f, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}
