package repl

import (
	"strings"
	"testing"
)

// A box names the links in its own network namespace as it likes: the
// `net` panel's link table and the routes under it show ESC [ 2 J (clear
// the screen) and an OSC title escaped (ut30 F6: the routes printed them).
func TestNetPanelEscapesTheLinkNamesABoxChose(t *testing.T) {
	sh, out := liveShell(t)
	run(t, sh, out, "new q", "unshare net",
		`exec sh -c 'E=$(printf "\033[2J\033]0;NET\007"); ip link add "v$E" type veth peer name "w$E" && ip link set "v$E" up && ip addr add 10.9.9.1/24 dev "v$E"'`)
	out.Reset()
	run(t, sh, out, "net")
	if strings.ContainsAny(out.String(), "\x1b\x07") {
		t.Fatalf("net printed a control character the box chose:\n%q", out)
	}
	if !strings.Contains(out.String(), `10.9.9.0/24 dev v\x1b[2J\x1b]0;NET\x07`) {
		t.Errorf("net's routes do not show the box's route over its link, escaped:\n%s", out)
	}
}
