package repl

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"stepbox/primitives/rootfs"
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

// The kernel's time to list a mount table grows with the square of one
// mount point's stack: 20,000 tmpfs mounts stacked on one directory made
// `mounts` take 12-19 s, and Ctrl-C did not stop it (ut30 F8). A panel
// reads the box's table until rootfs.PanelReadTime or Ctrl-C and says
// where it stopped; a step that decides on the table fails, undone.
// Here a small stack and a deadline far under its read time stand for a
// deep stack and the real deadline.
func TestMountsPanelsOfADeepStackAnswerInBoundedTime(t *testing.T) {
	sh, out := liveShell(t)
	run(t, sh, out, "new m", "unshare all", "mount overlay base", "pivot_root", "mount proc")
	const n = 2000
	run(t, sh, out, fmt.Sprintf("exec sh -c 'mkdir -p /mm; i=0; while [ $i -lt %d ]; do mount -t tmpfs -o size=4k t /mm || exit 1; i=$((i+1)); done'", n))
	table := func() string {
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", sh.Current().CommandPID()))
		if err != nil {
			t.Fatal(err)
		}
		return string(info)
	}
	total := strings.Count(table(), "\n")
	// The whole read, for the record and as the yardstick.
	out.Reset()
	start := time.Now()
	run(t, sh, out, "mounts")
	whole := time.Since(start)
	t.Logf("mounts of %d (%d stacked on one point): %v", total, n, whole)
	if strings.Contains(out.String(), "stopped reading") {
		t.Fatalf("mounts stopped under the default deadline:\n%s", out)
	}

	defer func(p, s time.Duration) { rootfs.PanelReadTime, rootfs.StepReadTime = p, s }(rootfs.PanelReadTime, rootfs.StepReadTime)
	rootfs.PanelReadTime = time.Millisecond
	cut := regexp.MustCompile(`the kernel was still listing the mount table after \S+: (\d+) mounts read, the rest not`)
	for _, line := range []string{"mounts", "mounts --diff"} {
		out.Reset()
		start := time.Now()
		run(t, sh, out, line)
		took := time.Since(start)
		m := cut.FindStringSubmatch(out.String())
		if m == nil {
			t.Errorf("%s took %v under a 1ms deadline and does not say it stopped reading (%d mounts, the whole read %v):\n%s", line, took, total, whole, out)
			continue
		}
		if read, _ := strconv.Atoi(m[1]); read >= total {
			t.Errorf("%s says it stopped after %d mounts of %d", line, read, total)
		}
		if took > whole/2+500*time.Millisecond {
			t.Errorf("%s took %v under a 1ms deadline, the whole read %v", line, took, whole)
		}
		t.Logf("%s under 1ms: %v: %s", line, took, m[0])
	}
	out.Reset()
	if err := sh.Execute(context.Background(), "security"); err == nil || !cut.MatchString(err.Error()) {
		t.Errorf("security under a 1ms deadline: err %v, want it to say the kernel took too long:\n%s", err, out)
	}

	// Ctrl-C (the line's context, cancelled) stops the read at its next
	// line, however long the deadline.
	rootfs.PanelReadTime = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out.Reset()
	if err := sh.Execute(ctx, "mounts"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "interrupted after 0 mounts read") {
		t.Errorf("mounts under Ctrl-C does not stop and say so:\n%s", out)
	}

	// A step that decides on the table does not run on a cut one.
	rootfs.PanelReadTime, rootfs.StepReadTime = 2*time.Second, time.Millisecond
	out.Reset()
	err := sh.Execute(context.Background(), "mount sys")
	if err == nil || !strings.Contains(err.Error(), "mount sys") || !cut.MatchString(err.Error()) {
		t.Errorf("mount sys under a 1ms step deadline: err %v, want it to fail naming the step and the reason:\n%s", err, out)
	}
	rootfs.StepReadTime = 10 * time.Second
	// The session stays usable, and the step was not done.
	out.Reset()
	run(t, sh, out, "mounts")
	if strings.Contains(out.String(), "stopped reading") {
		t.Errorf("mounts after the cut reads:\n%s", out)
	}
	if strings.Contains(table(), " - sysfs ") {
		t.Errorf("mount sys failed on a cut table but mounted /sys")
	}
	run(t, sh, out, "exec true", "mount sys")
}
