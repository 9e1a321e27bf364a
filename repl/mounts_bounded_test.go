package repl

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// allocated is how many bytes the session allocated while running line:
// the work it did, whatever the time it took.
func allocated(t *testing.T, sh *Shell, out *bytes.Buffer, line string) uint64 {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	run(t, sh, out, line)
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A box decides how many mounts its namespace holds (the kernel allows
// 100,000): `mounts`, `mounts --diff` and `security` read its table as a
// stream, keep what they show and count the rest (ut27 F10: 11,687
// mounts took 13 s and left the session at 300 MB).
func TestMountsPanelsOfABoxWithThousandsOfMountsDoBoundedWork(t *testing.T) {
	sh, out := liveShell(t)
	// The mounts are made in the box's own mount namespace, under its
	// own root: the host's table never sees them.
	run(t, sh, out, "new m", "unshare all", "mount overlay base", "pivot_root", "mount proc")
	const n = 2500
	run(t, sh, out, fmt.Sprintf("exec sh -c 'i=0; while [ $i -lt %d ]; do mount -t tmpfs t /mnt || exit 1; i=$((i+1)); done'", n))
	info, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", sh.Current().CommandPID()))
	if err != nil {
		t.Fatal(err)
	}
	total := strings.Count(string(info), "\n")
	if total < n {
		t.Fatalf("the box's table holds %d mounts, want at least %d", total, n)
	}
	info = nil
	// A table's worth of mounts costs the session about 1 KB each to
	// parse as a whole; the panels must cost a fraction of that.
	const bound = 1 << 20 * 3 / 2
	for _, line := range []string{"mounts", "mounts --diff", "security"} {
		out.Reset()
		if got := allocated(t, sh, out, line); got > bound {
			t.Errorf("%s allocated %d KB for a box of %d mounts, want at most %d KB: it reads more than it shows", line, got>>10, total, bound>>10)
		}
		if rows := strings.Count(out.String(), "\n"); rows > 160 {
			t.Errorf("%s printed %d lines for %d mounts:\n%s", line, rows, total, out)
		}
		switch line {
		case "mounts":
			if want := fmt.Sprintf("… and %d more mounts", total-100); !strings.Contains(out.String(), want) {
				t.Errorf("mounts does not count what it left out (want %q):\n%s", want, out)
			}
			if want := fmt.Sprintf("%d mounts", total); !strings.Contains(out.String(), want) {
				t.Errorf("mounts does not say the table holds %d mounts:\n%s", total, out)
			}
		case "mounts --diff":
			added := 0
			if m := regexp.MustCompile(`(\d+) added`).FindStringSubmatch(out.String()); m != nil {
				added, _ = strconv.Atoi(m[1])
			}
			if added < n || !strings.Contains(out.String(), " more") {
				t.Errorf("mounts --diff does not count every mount the box added (at least %d) and what it left out:\n%s", n, out)
			}
		}
	}
}
