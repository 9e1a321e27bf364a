package repl

import (
	"strings"
	"testing"
)

// ut35 G1: the tmpfs of `mount tmpfs` and the /dev of `mount dev` are
// bounded in inodes (nr_inodes=16384, one per 4 KiB of their 64 MiB, as
// a box's upper is): without it each gives the box's uid 0, with no
// capability at all, ~3 M inodes of kernel memory that size= does not
// count. The step's shell line (explain) shows the bound, the box's mount table
// has it, and one file past it fails with ENOSPC, in a root and in a
// --user box.
func TestMountTmpfsAndDevAreBoundedInInodes(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	for _, user := range []string{"", " --user"} {
		t.Run("new"+user, func(t *testing.T) {
			dir := boxTempDir(t)
			// 16400 names in one touch: past the bound, in the box's
			// empty dirs (the tmpfs root is one inode already).
			fill := func(d string) string {
				return "-exec sh -c 'mkdir " + d + "/f && cd " + d + "/f && touch $(seq 1 16400)'\n" +
					"exec sh -c 'n=$(ls " + d + "/f | wc -l); rm -r " + d + "/f; echo " + d + " held $n'\n"
			}
			script := "new a" + user + "\nunshare mnt pid\nmount overlay base\nexplain on\nmount tmpfs /mnt\nmount proc\nmount dev\nexplain off\npivot_root\n" +
				"exec sh -c 'grep -E \" /(dev|mnt) tmpfs \" /proc/self/mounts'\n" +
				fill("/mnt") + fill("/dev") + "exit\n"
			out, code := runStepbox(t, dir, script, "--plain")
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, out)
			}
			for _, want := range []string{
				"mount -t tmpfs -o nosuid,nodev,mode=1777,size=64m,nr_inodes=16384 tmpfs",
				"mount -t tmpfs -o nosuid,strictatime,mode=755,size=65536k,nr_inodes=16384 tmpfs",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("the steps' shell lines lack %q:\n%s", want, out)
				}
			}
			for _, d := range []string{"/mnt", "/dev"} {
				var line string
				for _, l := range strings.Split(out, "\n") {
					if f := strings.Fields(l); len(f) > 3 && f[1] == d && f[2] == "tmpfs" {
						line = l
					}
				}
				if !strings.Contains(line, ",nr_inodes=16384") {
					t.Errorf("the box's mount table has %s as %q, want nr_inodes=16384:\n%s", d, line, out)
				}
				// The tmpfs root and the dir take 2 inodes (and /dev's
				// nodes and links a dozen more): the files stop short.
				if !strings.Contains(out, d+" held 163") {
					t.Errorf("%s did not stop at its bound:\n%s", d, out)
				}
			}
			if !strings.Contains(out, "No space left on device") {
				t.Errorf("no ENOSPC past the bound:\n%s", out)
			}
			assertNoSessions(t, dir)
		})
	}
}
