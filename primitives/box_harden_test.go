package primitives

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"stepbox/primitives/cgroups"
	"stepbox/primitives/devices"
)

// execStatus runs argv in the box and returns its exit code and output.
func execStatus(t *testing.T, b *Box, argv ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	es, err := b.Exec(context.Background(), argv, nil, Stdio{Out: &out, Err: &out})
	if err != nil {
		t.Fatalf("exec %v: %v", argv, err)
	}
	return es.Code, out.String()
}

func boxMount(t *testing.T, b *Box, point string) *procfs.MountInfo {
	t.Helper()
	mounts, err := procfs.GetProcMounts(b.CommandPID())
	if err != nil {
		t.Fatal(err)
	}
	var top *procfs.MountInfo
	for _, m := range mounts {
		if m.MountPoint == point {
			top = m
		}
	}
	return top
}

// mount mask: the box's mount table has Docker's masked paths covered
// and its read-only paths read-only, and a write to /proc/sys fails
// inside the box; the host's /proc/sys is untouched.
func TestMountMaskCoversDockersPathsInTheBox(t *testing.T) {
	needRoot(t)
	_, b := lessonSixBox(t, "mask")
	st, err := b.MountMask()
	if err != nil {
		t.Fatal(err)
	}
	var remounts int
	for _, c := range st.Calls {
		if strings.Contains(c.Syscall, "MS_REMOUNT") && strings.Contains(c.Syscall, "MS_RDONLY") && strings.Contains(c.Syscall, "MS_BIND") {
			remounts++
		}
	}
	if remounts == 0 {
		t.Errorf("the record of mount mask holds no mount(…, MS_RDONLY|MS_REMOUNT|MS_BIND): %v", st.Calls)
	}
	for _, p := range readonlyPathsPresent(t) {
		m := boxMount(t, b, p)
		if m == nil {
			t.Errorf("%s: no mount in the box after mount mask", p)
			continue
		}
		if _, ro := m.Options["ro"]; !ro {
			t.Errorf("%s: mounted %v, want ro", p, m.Options)
		}
	}
	if m := boxMount(t, b, "/sys/firmware"); m != nil && m.FSType != "tmpfs" {
		t.Errorf("/sys/firmware is %s, want an empty tmpfs", m.FSType)
	}
	if code, out := execStatus(t, b, "sh", "-c", "echo 1 > /proc/sys/kernel/core_pattern"); code == 0 || !strings.Contains(out, "Read-only") {
		t.Errorf("writing /proc/sys inside the box after mount mask: exit %d %q, want a read-only failure", code, out)
	}
	if code, out := execStatus(t, b, "ls", "/sys/firmware"); code != 0 || strings.TrimSpace(out) != "" {
		t.Errorf("ls /sys/firmware: exit %d %q, want an empty directory", code, out)
	}
	if _, err := b.MountMask(); err == nil {
		t.Error("a second mount mask was accepted")
	}
}

// readonlyPathsPresent lists Docker's read-only paths this kernel has.
func readonlyPathsPresent(t *testing.T) []string {
	var out []string
	for _, p := range []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"} {
		if _, err := os.Lstat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// A :ro volume is read-only in the box's mount table, and a write to it
// fails inside the box.
func TestReadOnlyVolumeStaysReadOnly(t *testing.T) {
	needRoot(t)
	_, b := overlayBox(t, "vol")
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644)
	st, err := b.Mount("bind", src, "/data", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.PivotRoot(); err != nil {
		t.Fatal(err)
	}
	if last := st.Calls[len(st.Calls)-1].Syscall; !strings.HasPrefix(last, "mount_setattr(") || !strings.Contains(last, "AT_RECURSIVE") {
		t.Logf("the kernel has no mount_setattr: %s", last)
	}
	m := boxMount(t, b, "/data")
	if m == nil {
		t.Fatal("no /data mount in the box")
	}
	if _, ro := m.Options["ro"]; !ro {
		t.Errorf("/data mounted %v, want ro", m.Options)
	}
	if code, _ := execStatus(t, b, "sh", "-c", "echo y > /data/f"); code == 0 {
		t.Error("a write to the :ro volume succeeded")
	}
	// The shocker attack, read-only: a volume on the host's filesystem
	// is the mount a file handle needs to open any host file.
	var vol, host unix.Stat_t
	if unix.Stat(src, &vol) == nil && unix.Stat("/etc/hostname", &host) == nil && vol.Dev == host.Dev {
		if _, err := b.Mount("proc", "", "/proc", false); err != nil {
			t.Fatal(err)
		}
		got := probeBox(t, b, "open_by_handle_at")
		if r := got["open_by_handle_at"]; r.State != "open" || r.Via != "read" {
			t.Errorf("open_by_handle_at with a volume on the host's filesystem: %s via %s (%s), want a host file read", r.State, r.Via, r.Evidence)
		}
	}
}

// cgroup devices docker writes Docker's rules to the box's cgroup: the
// kernel's devices.list (v1) or the attached program (v2) holds them,
// and the box can no longer open a device they leave out, which it
// could before.
func TestCgroupDevicesDockerRefusesOtherDevices(t *testing.T) {
	needRoot(t)
	_, b := lessonSixBox(t, "dev")
	// /dev/kmsg (c 1:11): allowed before, outside Docker's list.
	open := "mknod /tmp/kmsg c 1 11 2>/dev/null; true < /tmp/kmsg"
	if code, out := execStatus(t, b, "sh", "-c", open); code != 0 {
		t.Fatalf("before cgroup devices docker, opening c 1:11 failed: %s", out)
	}
	if _, err := b.CgroupDevices("docker", nil); err != nil {
		t.Fatal(err)
	}
	d, err := b.CgroupDeviceRules()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, r := range devices.Docker()[1:] {
		want = append(want, r.String())
	}
	if d.Version == 1 && !slices.Equal(d.Lines, want) {
		t.Errorf("devices.list after cgroup devices docker:\n%v\nwant\n%v", d.Lines, want)
	}
	if d.Version == 2 && (len(d.Progs) == 0 || len(d.Rules) != len(devices.Docker())) {
		t.Errorf("cgroup v2: programs %v, rules %v: want stepbox's program with Docker's rules", d.Progs, d.Rules)
	}
	if code, out := execStatus(t, b, "sh", "-c", open); code == 0 || !strings.Contains(out, "not permitted") {
		t.Errorf("after cgroup devices docker, opening c 1:11: exit %d %q, want EPERM", code, out)
	}
	if code, out := execStatus(t, b, "sh", "-c", "head -c 4 /dev/urandom | wc -c"); code != 0 || strings.TrimSpace(out) != "4" {
		t.Errorf("/dev/urandom after cgroup devices docker: exit %d %q, want 4 bytes", code, out)
	}
}

// A bad rule, an unknown verb or a box without a cgroup: an error that
// names the argument and what is allowed, and the rules as they were.
func TestCgroupDevicesRefusesBadInputChangingNothing(t *testing.T) {
	needRoot(t)
	s, b := lessonSixBox(t, "devbad")
	before, err := b.CgroupDeviceRules()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		verb string
		args []string
		want string
	}{
		{"allow", []string{"x", "1:3", "rwm"}, "type x"},
		{"deny", []string{"c", "1:3", "rwz"}, "access rwz"},
		{"allow", []string{"c", "1-3", "r"}, "MAJOR:MINOR"},
		{"allow", nil, "name a rule"},
		{"docker", []string{"c"}, "takes no rule"},
		{"permit", []string{"a"}, "use show, docker, allow RULE or deny RULE"},
	} {
		_, err := b.CgroupDevices(c.verb, c.args)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "cgroup devices") {
			t.Errorf("cgroup devices %s %v: %v, want an error naming %q", c.verb, c.args, err, c.want)
		}
	}
	after, _ := b.CgroupDeviceRules()
	if !slices.Equal(before.Lines, after.Lines) || !slices.Equal(before.Progs, after.Progs) {
		t.Errorf("bad input changed the rules: %v → %v", before, after)
	}
	nb, _, err := s.NewBox("nocg", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nb.CgroupDevices("docker", nil); err == nil || !strings.Contains(err.Error(), cgroups.ErrNoGroup.Error()) {
		t.Errorf("cgroup devices docker without a cgroup: %v", err)
	}
}

// mount cgroup: every cgroup mount in the box is read-only, so neither
// release_agent nor the parent's cgroup.procs is writable through them;
// what stays open takes a mount of the box's own (CAP_SYS_ADMIN).
func TestMountCgroupIsReadOnlyAndClosesTheBoxsOwnMounts(t *testing.T) {
	needRoot(t)
	_, b := lessonSixBox(t, "cgfs")
	if _, err := b.Mount("cgroup", "", "/sys/fs/cgroup", false); err != nil {
		t.Fatal(err)
	}
	mounts, err := procfs.GetProcMounts(b.CommandPID())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range mounts {
		if m.FSType != "cgroup" && m.FSType != "cgroup2" {
			continue
		}
		n++
		if _, ro := m.Options["ro"]; !ro {
			t.Errorf("%s (%s) mounted %v in the box, want ro", m.MountPoint, m.FSType, m.Options)
		}
	}
	if n == 0 {
		t.Fatal("mount cgroup left no cgroup mount in the box")
	}
	if code, out := execStatus(t, b, "ls", "/sys/fs/cgroup"); code != 0 || strings.TrimSpace(out) == "" {
		t.Errorf("ls /sys/fs/cgroup in the box: exit %d %q", code, out)
	}
	got := probeBox(t, b, "release_agent", "cgroup_escape")
	for _, name := range []string{"release_agent", "cgroup_escape"} {
		if got[name].Via == "mounted" && got[name].State == "open" {
			t.Errorf("%s open through the box's read-only cgroup mount: %s", name, got[name].Evidence)
		}
	}
}
