package primitives

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A box's upper dir is on its own tmpfs, in a box that is root and in a
// --user box alike (whose overlay keeps whiteouts in user.* xattrs):
// creating, copying up and deleting files shows in the upper dir as
// overlayfs records them, and `rm` unmounts the tmpfs.
func TestTheUpperDirIsOnTheBoxsOwnTmpfs(t *testing.T) {
	needRoot(t)
	for _, user := range []bool{false, true} {
		t.Run(map[bool]string{false: "root", true: "user"}[user], func(t *testing.T) { upperOnTmpfs(t, user) })
	}
}

// upperOnTmpfs checks the upper tmpfs of a box started as root, or with
// --user; each in a session of its own, torn down before the next.
func upperOnTmpfs(t *testing.T, user bool) {
	s, stack := benchSession(t)
	b, _, err := s.NewBox("up", user)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unshare(mustTypes(t, "mnt", "pid"), UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.MountOverlay(stack); err != nil {
		t.Fatalf("--user %v: mount overlay: %v", user, err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(b.FS().Upper, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != unix.TMPFS_MAGIC {
		t.Fatalf("--user %v: the upper dir %s is on filesystem type %#x, not tmpfs", user, b.FS().Upper, st.Type)
	}
	if _, err := b.PivotRoot(); err != nil {
		t.Fatal(err)
	}
	// As root, a --user box's root is a block of host IDs of its own: the
	// layers' files, host root's, are nobody's to it and not its to
	// change; its "/" (the upper dir) is its own.
	changed, gone := []string{"made", "etc/hostname"}, "bin/true"
	script := "echo new > /made && echo more >> /etc/hostname && rm /bin/true"
	if user && os.Geteuid() == 0 {
		changed, gone = []string{"made"}, "mnt"
		script = "echo new > /made && rmdir /mnt && ! (echo more >> /etc/hostname) 2>/dev/null"
	}
	run(t, b, "sh", "-c", script)
	upper := b.FS().Upper
	for _, f := range changed {
		if _, err := os.Stat(filepath.Join(upper, f)); err != nil {
			t.Errorf("--user %v: %s is not in the upper dir: %v", user, f, err)
		}
	}
	var wh unix.Stat_t
	if err := unix.Lstat(filepath.Join(upper, gone), &wh); err != nil || wh.Mode&unix.S_IFMT != unix.S_IFCHR || wh.Rdev != 0 {
		t.Errorf("--user %v: no whiteout (a 0:0 character device) for /%s in the upper dir: %v", user, gone, err)
	}
	if out := run(t, b, "sh", "-c", "test -e /"+gone+" || echo gone"); strings.TrimSpace(out) != "gone" {
		t.Errorf("--user %v: /%s is still seen in the box", user, gone)
	}
	dir := filepath.Dir(upper)
	if err := s.Remove("up"); err != nil {
		t.Fatal(err)
	}
	if mounted(t, dir) {
		t.Errorf("--user %v: the upper tmpfs at %s is still mounted after rm", user, dir)
	}
}

// mounted reports whether path is a mount point in the host's mount table.
func mounted(t *testing.T, path string) bool {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == path {
			return true
		}
	}
	return false
}

// `rm` unmounts the box's upper tmpfs without reading the mount table
// where it is the filesystem the session holds: every copy of it stacked
// at the box's overlay dir goes (here a bind mount of it onto itself).
func TestRmUnmountsEveryCopyOfItsUpperTmpfsStackedOnItsDir(t *testing.T) {
	needRoot(t)
	s, b, dir := boxWithUpper(t, "stacked")
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("stacked"); err != nil {
		t.Fatal(err)
	}
	if mounted(t, dir) {
		t.Errorf("%s is still mounted after rm", dir)
	}
	if _, err := os.Stat(b.Dir); !os.IsNotExist(err) {
		t.Errorf("the box's state dir %s is still there after rm: %v", b.Dir, err)
	}
}

// Another filesystem mounted over the box's upper tmpfs on the host is
// not stepbox's: `rm` leaves it, and the tmpfs under it, in place and says
// so, and the box's ledger stays for a later teardown to finish.
func TestRmLeavesAForeignMountOverItsUpperTmpfsAndSaysSo(t *testing.T) {
	needRoot(t)
	s, b, dir := boxWithUpper(t, "covered")
	if err := unix.Mount("foreign", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	err := s.Remove("covered")
	if err == nil || !strings.Contains(err.Error(), "refusing to unmount") || !strings.Contains(err.Error(), `"foreign"`) {
		t.Errorf("rm with a foreign tmpfs over the upper dir: got %v, want a refusal naming it", err)
	}
	if !mounted(t, dir) {
		t.Fatalf("rm unmounted the foreign tmpfs at %s", dir)
	}
	if err := unix.Unmount(dir, 0); err != nil {
		t.Fatal(err)
	}
	// What a sweep does after a crash: the ledger, read from disk.
	if _, err := teardownLedger(b.Dir, s.ID); err != nil {
		t.Fatalf("teardown of the ledger left behind: %v", err)
	}
	if mounted(t, dir) {
		t.Errorf("the upper tmpfs at %s is still mounted after the ledger's teardown", dir)
	}
}

// boxWithUpper starts box name in a session of its own and returns the
// dir its upper tmpfs is mounted at; skipped where it gets none.
func boxWithUpper(t *testing.T, name string) (*Session, *Box, string) {
	t.Helper()
	s, _ := benchSession(t)
	b, _, err := s.NewBox(name, false)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(b.Dir, "overlay")
	if !mounted(t, dir) {
		t.Skip("no upper tmpfs here (" + UpperSizeEnv + "=0, or too little memory)")
	}
	return s, b, dir
}
