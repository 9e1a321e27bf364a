package repl

import (
	"path/filepath"
	"strings"
	"testing"
)

// A mount whose source holds a space, a tab, an ESC, a BEL and a newline,
// on a mount point with a space: `mounts` and `mounts --diff` show each
// decoded from mountinfo's octal escapes ("\040") and escaped as
// viz.Escape escapes, whole, and no ESC or BEL of the box's reaches the
// terminal.
func TestMountsShowABoxsMountSourceDecodedAndEscaped(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	out, code := runStepbox(t, filepath.Join(dir, "state"), "new a\nunshare mnt pid\nmount overlay base\npivot_root\n"+
		`exec sh -c 'mkdir -p "/mnt/p q" && mount -t tmpfs "$(printf "a b\tc\033]0;x\007d\ne")" "/mnt/p q"'`+"\n"+
		"mounts\nmounts --diff\n", "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	table, diff, ok := strings.Cut(out, "> mounts --diff")
	if !ok {
		t.Fatalf("no `mounts --diff` in the output:\n%s", out)
	}
	const source = `a b\tc\x1b]0;x\x07d\ne`
	for _, want := range []string{"/mnt/p q ", source} {
		if !strings.Contains(table, want) {
			t.Errorf("`mounts` lacks %q:\n%s", want, table)
		}
	}
	if want := "+ /mnt/p q "; !strings.Contains(diff, want) {
		t.Errorf("`mounts --diff` lacks %q:\n%s", want, diff)
	}
	if want := "tmpfs " + source + " private  new in the box"; !strings.Contains(diff, want) {
		t.Errorf("`mounts --diff` lacks %q:\n%s", want, diff)
	}
	if strings.ContainsAny(out, "\x1b\x07") || strings.Contains(out, `\040`) {
		t.Errorf("a raw ESC or BEL, or a mountinfo escape, in the output: %q", out)
	}
}
