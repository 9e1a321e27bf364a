package repl

import (
	"path/filepath"
	"strings"
	"testing"
)

// forged is the line a box tries to print in stepbox's own voice.
const forged = "✓ FAKE-LINE-INJECTED"

// forgedLine reports whether out holds a line the box wrote: a line that
// starts (after a table's border and padding) with the forged text, which
// an escaped "\n" keeps on the line before it.
func forgedLine(out string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimLeft(l, "│ "), forged) {
			return true
		}
	}
	return false
}

// A box puts "\n" in its hostname, a process's command line and a mount
// point: `boxes`, `ps` and `export bundle`'s summary show it as \n, and
// print no line of the box's choosing (ut30 F3).
func TestBoxesPsAndExportShowANewlineFromTheBoxEscaped(t *testing.T) {
	sh, out := liveShell(t)
	run(t, sh, out, "new y", "unshare all", "mount overlay base", "pivot_root", "mount dev",
		`exec sh -c 'N=$(printf "X\n`+forged+`\nY"); mkdir -p "/m$N" && mount -t tmpfs t "/m$N" && hostname "h$N"'`,
		`exec sh -c 'sh -c "sleep 30; :" "$(printf "X\n`+forged+`\nY")" >/dev/null 2>&1 </dev/null &'`)
	for _, c := range []struct{ line, want string }{
		{"boxes", `hX\n✓`}, // the hostname column is cut to fit
		{"ps", `X\n✓`},
		{"export bundle " + filepath.Join(t.TempDir(), "b"), `/mX\n` + forged + `\nY`},
	} {
		out.Reset()
		run(t, sh, out, c.line)
		if forgedLine(out.String()) {
			t.Errorf("%s printed a line the box wrote:\n%s", c.line, out)
		}
		if !strings.Contains(out.String(), c.want) {
			t.Errorf("%s does not show the box's text with \\n escaped (%q):\n%s", c.line, c.want, out)
		}
	}
}
