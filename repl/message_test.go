package repl

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"testing"
)

// An error that wraps a path the box named (os's fs.PathError and
// os.LinkError write it into the message as it is) shows the path
// escaped: a newline in a file's name is \n, not a line that reads as
// stepbox's own, and a backslash is \\; stepbox's own lines keep their
// layout.
func TestAnErrorShowsAPathTheBoxNamedOnItsLine(t *testing.T) {
	const fake = "\nerror: fake, printed by the box\n✓ box web removed"
	upper := "/run/stepbox/boxes/web/upper/f" + fake
	for name, tc := range map[string]struct {
		err   error
		lines []string // the error's lines as printed, past "error: "
	}{
		"open, wrapped": {
			err:   fmt.Errorf("layer add app: %w", &fs.PathError{Op: "open", Path: upper, Err: syscall.EACCES}),
			lines: []string{`layer add app: open /run/stepbox/boxes/web/upper/f\nerror: fake, printed by the box\n✓ box web removed: permission denied`},
		},
		"rename, with stepbox's own second line": {
			err: fmt.Errorf("commit: %w\nthe upper dir is left as it was", &os.LinkError{Op: "rename", Old: upper, New: `/layers/a\x1bb`, Err: syscall.EXDEV}),
			lines: []string{`commit: rename /run/stepbox/boxes/web/upper/f\nerror: fake, printed by the box\n✓ box web removed /layers/a\\x1bb: invalid cross-device link`,
				"the upper dir is left as it was"},
		},
		"a path and a longer one that holds it": {
			err:   fmt.Errorf("%w; %w", &fs.PathError{Op: "stat", Path: "/a\n", Err: syscall.ENOENT}, &fs.PathError{Op: "stat", Path: "/a\n/b", Err: syscall.ENOENT}),
			lines: []string{`stat /a\n: no such file or directory; stat /a\n/b: no such file or directory`},
		},
	} {
		sh, out := plainShell()
		sh.Width = 1000
		sh.reportError(tc.err)
		got := strings.Split(strings.TrimPrefix(out.String(), "error: "), "\n")
		if len(got) < len(tc.lines) {
			t.Errorf("%s: printed\n%s\nwant the lines %q", name, out, tc.lines)
			continue
		}
		for i, want := range tc.lines {
			if strings.TrimSpace(got[i]) != want {
				t.Errorf("%s: line %d printed\n%s\nwant\n%s", name, i+1, got[i], want)
			}
		}
		// Any line after the error's own is the explainer's, indented.
		for _, l := range got[len(tc.lines):] {
			if l != "" && !strings.HasPrefix(l, "  ") {
				t.Errorf("%s: a line of the box's own: %q in\n%s", name, l, out)
			}
		}
	}
}

// The learner's own lines, echoed (a script's), listed (history) or
// given by a lesson to type, keep their backslashes as typed: they are
// lines to type again (exec sh -c 'printf "a\n"'), not names a box chose;
// only their control characters are escaped.
func TestTheLearnersLinesKeepTheirBackslashes(t *testing.T) {
	sh, out := plainShell()
	const line = `exec sh -c 'printf "a\n" | tr "\0" x'`
	if got := sh.echoLine(line + "\x1b]0;T\a"); !strings.HasSuffix(got, line+`\x1b]0;T\x07`) {
		t.Errorf("the echo of %q: %q", line, got)
	}
	sh.command("try: ", line)
	sh.history = []string{line}
	if err := sh.Execute(context.Background(), "history"); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); strings.Count(got, line) != 2 {
		t.Errorf("the lesson's command and history should show %q as typed:\n%s", line, got)
	}
}
