package repl

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/procfs"

	"stepbox/primitives/step"
)

// ut32 F7: a box binds a host dir into its new root before pivot_root,
// which carries the bind along, and pivot_root's line said the host was
// "detached and unreachable from inside". The line names each mount
// that still shows host files, the box's own (escaped, cut, the first
// reachShown of them) and a volume of `mount bind`, and what to do, and
// calls the host unreachable only where none is there: a tmpfs the box
// mounted itself, stepbox's tmpfs, dev and proc are not named. As root
// and in a user namespace.
func TestPivotRootNamesTheMountsThatStillShowHostFiles(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	for _, c := range []struct{ name, flag string }{{"r", ""}, {"u", " --user"}} {
		t.Run(c.name, func(t *testing.T) {
			dir := boxTempDir(t)
			scratch, vol := scratchDir(t, dir, "victim"), scratchDir(t, dir, "vol")
			merged := `M=$(grep " - overlay " /proc/self/mountinfo | cut -d" " -f5 | head -1); `
			own := "exec sh -c '" + merged + `mkdir -p $M/own && mount -t tmpfs boxtmp $M/own'` + "\n"
			build := "new " + c.name + c.flag + "\nunshare all\nmount overlay base\nmount tmpfs /tmp\nmount dev /dev\n" + own
			// Without a volume or a bind of the box's: the line as it was.
			out, code := runStepbox(t, filepath.Join(dir, "state0"), build+"pivot_root\n", "--plain")
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, out)
			}
			flat := regexp.MustCompile(`\n {2,}`).ReplaceAllString(out, " ")
			if !strings.Contains(flat, "✓ the overlay is the box's / now; the host's root is detached and unreachable from inside\n") {
				t.Errorf("with no bind of the box's, pivot_root's line changed, or names a mount:\n%s", out)
			}

			// The box's binds: a plain one at /mnt and, as root, five
			// more, past what the line names; in a user namespace one
			// at a point holding a newline and one at a long point.
			binds := "mkdir -p $M/mnt && mount --bind " + scratch + " $M/mnt"
			n, want := 7, []string{"and 2 more: `mounts` lists them"}
			if c.flag == "" {
				for i := range 5 {
					binds += fmt.Sprintf(" && mkdir -p $M/m%d && mount --bind %s $M/m%d", i, scratch, i)
				}
			} else {
				binds += ` && N=$(printf "a\nEVIL") && mkdir "$M/$N" && mount --bind ` + scratch + ` "$M/$N"` +
					` && L=$(printf "%0100d" 0) && mkdir $M/$L && mount --bind ` + scratch + " $M/$L"
				n = 4
				want = []string{"/a\\nEVIL: a", "`exec umount $'/a\\nEVIL'` detaches it",
					"/" + strings.Repeat("0", 63) + "… (101 bytes): a", "`exec umount` with its whole path detaches it"}
			}
			script := build + "mount bind " + vol + " /vol:ro\nexec sh -c '" + merged + binds + "'\npivot_root\nexec umount /mnt\n"
			out, code = runStepbox(t, filepath.Join(dir, "state"), script, "--plain")
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, out)
			}
			onlyKeep(t, scratch, out)
			flat = regexp.MustCompile(`\n {2,}`).ReplaceAllString(out, " ")
			if strings.Contains(out, "unreachable") {
				t.Errorf("pivot_root calls the host unreachable while the box binds a host dir:\n%s", out)
			}
			for _, w := range append(want,
				fmt.Sprintf("✓ the overlay is the box's / now and the host's root is detached, but %d mounts inside still show host files", n),
				"/mnt: a", "["+step.Cut(inItsFS(t, scratch))+"] that no step of stepbox's made: the box mounted it before pivot_root", "`exec umount /mnt` detaches it",
				"/vol: the host's "+vol+", a volume of your `mount bind`, read-only: the box reaches it") {
				if !strings.Contains(flat, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, bad := range []string{"\nEVIL", "  /own:", "  /tmp:", "  /dev", "  /proc:"} {
				if strings.Contains(out, bad) {
					t.Errorf("output holds %q: a raw newline of the box's, or a mount that shows no host file:\n%s", bad, out)
				}
			}
		})
	}
}

// inItsFS is host path p as the mount table names it: below the root of
// the filesystem it is on. On the 6.1 VM /tmp is a disk of its own, so
// /tmp/x is /x there; here it is /tmp/x.
func inItsFS(t *testing.T, p string) string {
	t.Helper()
	ms, err := procfs.GetMounts()
	if err != nil {
		t.Fatal(err)
	}
	at, root := "", ""
	for _, m := range ms {
		mp := m.MountPoint
		if (p == mp || strings.HasPrefix(p, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(at) {
			at, root = mp, m.Root
		}
	}
	return filepath.Join(root, strings.TrimPrefix(p, strings.TrimSuffix(at, "/")))
}
