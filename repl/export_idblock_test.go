package repl

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// boxHostUID is the host uid a box's root maps to: the first of its ID
// block.
func boxHostUID(t *testing.T, sh *Shell, name string) int {
	t.Helper()
	b, err := sh.Session.Box(name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", b.PID()))
	if err != nil {
		t.Fatal(err)
	}
	var inside, outside int
	if _, err := fmt.Sscan(string(m), &inside, &outside); err != nil || inside != 0 {
		t.Fatalf("box %s's uid_map %q: %v", name, m, err)
	}
	return outside
}

// waitUnmapped waits until no live process's user namespace maps host
// uid uid. A removed box's PID 1 is a zombie until the PID 1 it was
// reparented to reaps it, and still shows its namespace's map; stepbox
// counts no zombie's map (mappedIDs), and neither does the wait: where
// that PID 1 reaps nothing (`make test-container`, whose PID 1 is go)
// the zombie stays, and the wait ran out its 30 s.
func waitUnmapped(t *testing.T, uid int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		mapped := ""
		maps, _ := filepath.Glob("/proc/[0-9]*/uid_map")
		for _, m := range maps {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(m)))
			if _, zombie, err := procStartState(pid); err != nil || zombie {
				continue
			}
			var inside, outside int
			if b, err := os.ReadFile(m); err == nil && len(strings.Fields(string(b))) == 3 {
				if _, err := fmt.Sscan(string(b), &inside, &outside); err == nil && outside == uid {
					mapped = m
				}
			}
		}
		if mapped == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Skipf("%s still maps uid %d after 30 s", mapped, uid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A bundle exported from a --user box is 0710 root:the block's root group,
// its rootfs/ the block's: the next --user box given that block would own
// the bundle's rootfs/ (ut31 F5). The block stays out of reuse while the
// bundle is there, and is free again once it is deleted.
func TestAnExportedUserBundleKeepsItsIDBlockFromLaterBoxes(t *testing.T) {
	sh, out := liveShell(t)
	bundle := filepath.Join(t.TempDir(), "bun")
	run(t, sh, out, "new ba --user", "unshare all", "mount overlay base", "pivot_root", "export bundle "+bundle)
	a := boxHostUID(t, sh, "ba")
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(bundle, "rootfs"), &st); err != nil || int(st.Uid) != a {
		t.Fatalf("the bundle's rootfs/ is not box ba's root's (uid %d): %+v, %v", a, st, err)
	}
	run(t, sh, out, "rm ba")
	waitUnmapped(t, a)
	run(t, sh, out, "new bc --user")
	if c := boxHostUID(t, sh, "bc"); c == a {
		t.Fatalf("box bc was given uid %d, the block of the bundle %s exported from ba, which still exists: bc's root owns its rootfs/", c, bundle)
	}

	if err := os.RemoveAll(bundle); err != nil {
		t.Fatal(err)
	}
	// The first free block is taken: ba's, unless one below it was freed
	// meanwhile, or another session's box maps ba's for a moment (other
	// tests run beside this one): a few tries.
	for try := 0; ; try++ {
		run(t, sh, out, "new bd --user")
		d := boxHostUID(t, sh, "bd")
		if d <= a {
			break
		}
		if try == 5 {
			t.Fatalf("box bd was given uid %d, %d times, never ba's block (uid %d), which the deleted bundle kept", d, try+1, a)
		}
		run(t, sh, out, "rm bd")
		time.Sleep(200 * time.Millisecond)
	}
	if left, _ := filepath.Glob(fmt.Sprintf("/run/stepbox-ids/%d.bundle-*", a)); len(left) > 0 {
		t.Errorf("the record of the deleted bundle is still there after a claim: %v", left)
	}
}
