package repl

import (
	"strings"
	"testing"

	"github.com/google/nftables"

	"stepbox/primitives/network"
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

// A step's notes name what the host side has: here an nf_tables table
// whose forward chain drops, named by whoever made it with ESC [ 2 J and
// a backslash. `net bridge` prints the note escaped, as the step panel's
// notes are (issue 15).
func TestNetStepNotesAreEscaped(t *testing.T) {
	sh, out, host := netShell(t)
	ns, err := network.NSAt(host.Path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ns.Nft()
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseLasting()
	tb := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "t\x1b[2J"})
	drop := nftables.ChainPolicyDrop
	c.AddChain(&nftables.Chain{Name: `c\x1b`, Table: tb, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &drop})
	if err := c.Flush(); err != nil {
		t.Fatalf("adding the host side's table: %v", err)
	}
	out.Reset()
	run(t, sh, out, "net bridge")
	if strings.Contains(out.String(), "\x1b") {
		t.Fatalf("net bridge printed a control character of the host side's table name:\n%q", out)
	}
	if !strings.Contains(out.String(), `table ip t\x1b[2J, chain c\\x1b: policy drop`) {
		t.Errorf("net bridge's note does not name the table and chain escaped:\n%s", out)
	}
}
