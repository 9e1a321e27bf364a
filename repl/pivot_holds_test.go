package repl

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// ut33 F6: pivot_root(2) moves only the processes whose root or cwd is
// the old root. A box process started before it with its cwd on a host
// dir, or holding a host file open, keeps it, and from inside the box
// /proc/PID/cwd/../.. is the host's /; pivot_root's line said the host
// was "detached and unreachable from inside" and `probe older_processes`
// and proc_root said closed. The line names each such process (its PID,
// its command name escaped, what it holds) and `exec kill PID`, and both
// probes say open, naming them; without them both are as they were. As root and in
// a user namespace; as root also more processes than the line names.
func TestPivotRootNamesTheProcessesThatStillHoldTheHost(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	flat := func(s string) string { return regexp.MustCompile(`\n {2,}`).ReplaceAllString(s, " ") }
	mapped := `\d+ mapped files? \(map_files\)`
	for _, c := range []struct{ name, flag string }{{"r", ""}, {"u", " --user"}} {
		t.Run(c.name, func(t *testing.T) {
			dir := boxTempDir(t)
			scratch := scratchDir(t, dir, "victim")
			// A command name of the box's with a tab: the link's
			// name is the process's comm.
			evil := filepath.Join(dir, "s\tEVIL")
			if err := os.Symlink("/bin/sleep", evil); err != nil {
				t.Fatal(err)
			}
			build := "new " + c.name + c.flag + "\nunshare all\nmount overlay base\nmount tmpfs /tmp\n"
			probe := "pivot_root\nprobe older_processes proc_root\n"

			// Without such a process (one started after pivot_root): the
			// line and the probe as they were. One started before it is
			// named whatever it shows (ut34 F1, TestPivotRootNamesEvery…).
			out, code := runStepboxAt(t, 4000, filepath.Join(dir, "state0"), build+"pivot_root\nexec sh -c 'cd / && exec sleep 300 &'\nprobe older_processes proc_root\n", "--plain")
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, out)
			}
			if !strings.Contains(flat(out), "✓ the overlay is the box's / now; the host's root is detached and unreachable from inside\n") {
				t.Errorf("with no process on the host, pivot_root's line changed:\n%s", out)
			}
			if strings.Contains(out, "host's filesystem") || !regexp.MustCompile(`older_processes +│ closed`).MatchString(out) || !regexp.MustCompile(`proc_root +│ closed`).MatchString(out) {
				t.Errorf("with no process on the host, probe older_processes or proc_root is not closed, or names one:\n%s", out)
			}

			procs := "exec sh -c 'cd " + scratch + " && exec sleep 300 &'\n" +
				"exec sh -c 'exec 7<" + scratch + "/keep; cd / && exec sleep 301 &'\n" +
				"exec sh -c 'cd " + scratch + ` && exec "$0" 302 &' '` + evil + "'\n"
			out, code = runStepboxAt(t, 4000, filepath.Join(dir, "state"), build+procs+probe, "--plain")
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, out)
			}
			onlyKeep(t, scratch, out)
			f := flat(out)
			if strings.Contains(out, "unreachable") {
				t.Errorf("pivot_root calls the host unreachable while box processes hold it:\n%s", out)
			}
			res := []string{
				`✓ the overlay is the box's / now and the host's root is detached, but 3 processes of the box still hold the host's filesystem:`,
				// The host's sleep, started before pivot_root, maps host
				// files too (ut34 F1).
				`PID (\d+) \(host \d+\) sleep: cwd, ` + mapped + ` on the host's filesystem; ` + "`exec kill " + `(\d+)` + "`" + ` ends it; start it again after pivot_root`,
				`PID (\d+) \(host \d+\) sleep: fd 7, ` + mapped + ` on the host's filesystem; ` + "`exec kill " + `(\d+)` + "`",
				`PID (\d+) \(host \d+\) s\\tEVIL: cwd, `,
				`older_processes +│ open +│ [^│]*PID \d+ \(host \d+\) sleep 300: cwd, ` + mapped + ` on the host's filesystem`,
				`older_processes +│ open +│ [^│]*PID \d+ \(host \d+\) sleep 301: fd 7, ` + mapped + ` on the host's filesystem`,
			}
			// The in-box proc_root probe climbs from the kept cwd to the
			// host's /etc: only where the scratch dir is on the host's
			// root filesystem. On the 6.1 VM /tmp is a disk of its own,
			// and climbing stops at its root (the old root is detached);
			// the holder is still named above.
			if sameFS(t, scratch, "/") {
				res = append(res, `proc_root +│ open +│ read the host's (/etc/[\w-]+) through /proc/\d+/cwd/\.\./\.\.(/etc/[\w-]+), the cwd of a process started before pivot_root`)
			} else {
				t.Logf("%s is not on the filesystem of /: proc_root's climb is not expected to reach /etc", scratch)
			}
			for _, re := range res {
				m := regexp.MustCompile(re).FindStringSubmatch(f)
				if m == nil {
					t.Errorf("output lacks %q:\n%s", re, out)
				} else if len(m) == 3 && m[1] != m[2] {
					t.Errorf("the line names PID %s but says to kill %s:\n%s", m[1], m[2], out)
				}
			}
			if strings.Contains(out, "\tEVIL") {
				t.Errorf("a raw tab of the box's command name:\n%s", out)
			}
			if c.flag != "" {
				return
			}
			// More than the line names: the first five, then how many more.
			many := strings.Repeat("exec sh -c 'cd "+scratch+" && exec sleep 303 &'\n", 7)
			out, code = runStepbox(t, filepath.Join(dir, "state2"), build+many+"pivot_root\n", "--plain")
			if code != 0 {
				t.Fatalf("exit %d:\n%s", code, out)
			}
			f = flat(out)
			for _, w := range []string{"but 7 processes of the box still hold the host's filesystem:", "and 2 more: `ps` lists the box's processes"} {
				if !strings.Contains(f, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if n := strings.Count(f, "sleep: cwd, "); n != 5 {
				t.Errorf("the line names %d processes, want 5:\n%s", n, out)
			}
		})
	}
}

// sameFS says whether paths a and b are on one filesystem (st_dev).
func sameFS(t *testing.T, a, b string) bool {
	t.Helper()
	var sa, sb unix.Stat_t
	if err := unix.Stat(a, &sa); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(b, &sb); err != nil {
		t.Fatal(err)
	}
	return sa.Dev == sb.Dev
}
