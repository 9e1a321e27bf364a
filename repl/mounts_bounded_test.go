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
// the work it did, whatever the time it took. The least of three runs:
// a garbage collection during one empties the renderer's pooled buffers,
// which the next render makes again (megabytes, whatever it draws).
func allocated(t *testing.T, sh *Shell, out *bytes.Buffer, line string) uint64 {
	t.Helper()
	least := uint64(1 << 63)
	for range 3 {
		var before, after runtime.MemStats
		out.Reset()
		runtime.ReadMemStats(&before)
		run(t, sh, out, line)
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	return least
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
	commands := []string{"mounts", "mounts --diff", "security"}
	// What each costs for a handful of mounts: rendering a panel has
	// costs of its own, whatever the table.
	few := map[string]uint64{}
	for _, line := range commands {
		run(t, sh, out, line) // the renderer's buffers, made once
		few[line] = allocated(t, sh, out, line)
	}
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
	// Kept as a whole, each mount costs the session about 2 KB to parse
	// and show; `mounts` parses only the rows it keeps, and the others
	// parse each line to drop it. Nothing may grow with every mount
	// as the whole table did.
	bound := map[string]uint64{"mounts": 2 << 20, "mounts --diff": 800 * n, "security": 800 * n}
	for _, line := range commands {
		out.Reset()
		got := allocated(t, sh, out, line)
		if got > few[line]+bound[line] {
			t.Errorf("%s allocated %d KB for a box of %d mounts, %d KB more than for a handful, want at most %d KB more: it keeps more than it shows", line, got>>10, total, (got-few[line])>>10, bound[line]>>10)
		}
		t.Logf("%s: %d KB for a handful of mounts, %d KB for %d", line, few[line]>>10, got>>10, total)
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
