package repl

import (
	"strings"
	"testing"
)

// A box names files and processes as it likes: ESC ] 0 ; retitles the
// terminal, ESC [ 2 J clears it. Every panel shows them escaped.
func TestPanelsEscapeNamesTheBoxChose(t *testing.T) {
	sh, out := liveShell(t)
	run(t, sh, out, "new evil", "unshare mnt pid uts", "mount overlay base", "pivot_root",
		`exec sh -c 'touch "$(printf "/t\033]0;pwned\007\033[2J")"'`,
		`exec sh -c 'sh -c "sleep 30; : $(printf "\033]0;pwned\007")" >/dev/null 2>&1 </dev/null &'`)
	out.Reset()
	run(t, sh, out, "stack", "stack --files", "status", "ps", "mounts", "boxes")
	if strings.ContainsAny(out.String(), "\x1b\x07") {
		t.Fatalf("a panel printed a control character the box chose:\n%q", out)
	}
	if !strings.Contains(out.String(), `t\x1b]0;pwned\x07\x1b[2J`) {
		t.Errorf("the stack does not show the file, escaped:\n%s", out)
	}
}
