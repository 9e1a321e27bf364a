package repl

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/charmbracelet/x/ansi"

	"stepbox/primitives"
	"stepbox/viz"
)

// screen is an 80×24 terminal: a step's output and the next prompt fit.
const screenWidth, screenLines = 80, 24

// overWidth lists the lines of out wider than width.
func overWidth(out string, width int) []string {
	var wide []string
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if ansi.StringWidth(l) > width {
			wide = append(wide, l)
		}
	}
	return wide
}

// Each step of a whole container, at 80 columns, fits one 80×24 screen
// with the prompt after it: no line wider, no more lines than it holds.
func TestEachStepFitsOneScreen(t *testing.T) {
	sh, out := liveShell(t)
	sh.Width = screenWidth
	for _, line := range []string{
		"new web",
		"unshare uts ipc net mnt pid cgroup",
		"hostname web1",
		"layers",
		"mount overlay base fileA",
		"mount dev",
		"pivot_root",
		"cgroup new",
		"cgroup limit pids 20",
		"cgroup limit memory 64M",
		"cgroup set pids.max 30",
		"cgroup attach",
		"exec true",
		"boxes",
		"ps",
	} {
		out.Reset()
		run(t, sh, out, line)
		got := strings.TrimRight(out.String(), "\n")
		if n := strings.Count(got, "\n") + 1; n > screenLines-1 {
			t.Errorf("%s: %d lines, more than a screen holds under its prompt:\n%s", line, n, got)
		}
		if wide := overWidth(got, screenWidth); len(wide) > 0 {
			t.Errorf("%s: lines wider than %d:\n%s", line, screenWidth, strings.Join(wide, "\n"))
		}
		if strings.Contains(got, sh.Session.Dirs.Run+"/") {
			t.Errorf("%s: the state dir is written out, not as $STATE:\n%s", line, got)
		}
	}
}

// The prompt stays short however many namespaces a box has, and still
// says what it has.
func TestPromptStaysShortWithEveryNamespace(t *testing.T) {
	sh, out := liveShell(t)
	run(t, sh, out, "new a-box-with-a-name-of-32-chars --user", "unshare uts ipc net mnt pid cgroup", "mount overlay base", "pivot_root", "cgroup new")
	p := sh.Prompt()
	if n := ansi.StringWidth(p); n > 40 {
		t.Errorf("the prompt is %d columns: %q", n, p)
	}
	if !strings.Contains(p, "[8 ns|pivot|cg]") && !strings.Contains(p, "[7 ns|pivot|cg]") {
		t.Errorf("the prompt does not count the namespaces: %q", p)
	}
	out.Reset()
	run(t, sh, out, "help")
	if !strings.Contains(unfolded(out.String()), "then counted") {
		t.Errorf("help does not explain the prompt:\n%s", out)
	}
}

// Errors fold at words under their labels, at the terminal's width.
func TestErrorsFoldUnderTheirLabels(t *testing.T) {
	sh, out := plainShell()
	sh.reportError(&CommandError{Cmd: "cgroup set", Err: errors.New("no such control file in /sys/fs/cgroup/blkio/stepbox-9579/web-361b639d8431 (ls /sys/fs/cgroup/blkio/stepbox-9579/web-361b639d8431 shows the files there)")})
	got := out.String()
	if wide := overWidth(got, 80); len(wide) > 0 {
		t.Errorf("lines wider than 80:\n%s", strings.Join(wide, "\n"))
	}
	lines := strings.Split(strings.TrimRight(got, "\n"), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[1], strings.Repeat(" ", len("error: "))) {
		t.Errorf("the error does not fold under its text:\n%s", got)
	}
	if !strings.HasPrefix(unfolded(got), unfolded("error: cgroup set: no such control file in /sys/fs/cgroup/blkio/stepbox-9579/web-361b639d8431 (ls /sys/fs/cgroup/blkio/stepbox-9579/web-361b639d8431 shows the files there)")) {
		t.Errorf("folding changed the words:\n%s", got)
	}
}

// Without a terminal, the width is $COLUMNS, or 80 when it says nothing.
func TestOutputWidthFollowsColumnsElse80(t *testing.T) {
	if primitives.IsTerminal(os.Stdout) {
		t.Skip("standard output is a terminal: its width wins")
	}
	for _, c := range []struct {
		columns string
		want    int
	}{{"", 80}, {"junk", 80}, {"120", 120}, {"72", 72}, {"20", viz.MinWidth}} {
		t.Setenv("COLUMNS", c.columns)
		if got := outputWidth(nil); got != c.want {
			t.Errorf("COLUMNS=%q: width %d, want %d", c.columns, got, c.want)
		}
	}
}
