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
