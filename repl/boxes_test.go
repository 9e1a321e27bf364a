package repl

import (
	"strings"
	"testing"

	"stepbox/viz"
)

// `boxes` shows the hostname the box's UTS namespace holds when it runs,
// however it was set, escaped: not the one `hostname` last set.
func TestBoxesShowsTheHostnameTheKernelHoldsNow(t *testing.T) {
	sh, out := liveShell(t)
	run(t, sh, out, "new hx", "unshare uts", "hostname web1",
		`exec sh -c 'echo evil > /proc/sys/kernel/hostname'`, "new esc", "unshare uts",
		`exec sh -c 'printf "e\\033]0;T\\007v" > /proc/sys/kernel/hostname'`)
	out.Reset()
	run(t, sh, out, "boxes")
	table := out.String()
	if strings.Contains(table, "web1") || !strings.Contains(table, "evil") {
		t.Errorf("boxes does not show the hostname box hx set itself (evil):\n%s", table)
	}
	if strings.ContainsAny(table, "\x1b\x07") || !strings.Contains(table, viz.Escape("e\x1b]0;T\x07v")) {
		t.Errorf("boxes does not show box esc's hostname escaped (%s):\n%q", viz.Escape("e\x1b]0;T\x07v"), table)
	}
}

// After a box kills its own box process, ps draws no process for it and
// enter does not try its namespace files: both say the box is gone, as
// exec does.
func TestPsAndEnterSayABoxIsGoneOnceItKilledItsBoxProcess(t *testing.T) {
	sh, out := liveShell(t)
	run(t, sh, out, "new kx", "unshare uts")
	errorOf(t, sh, out, `exec sh -c 'kill -9 $PPID'`)
	out.Reset()
	run(t, sh, out, "ps")
	if ps := out.String(); strings.Contains(ps, "box process · kx") || !strings.Contains(ps, "box kx is gone") {
		t.Errorf("ps after box kx killed its box process:\n%s", ps)
	}
	if msg := errorOf(t, sh, out, "enter -- true"); !strings.Contains(msg, "box kx is gone") || strings.Contains(msg, "/ns/") {
		t.Errorf("enter after box kx killed its box process:\n%s", msg)
	}
}
