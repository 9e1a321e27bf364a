package repl

import (
	"strings"
	"testing"
)

// Tab on an empty line lists the commands (and only Tab: a fresh prompt
// shows no menu); `enter` announces the hand-over and comes back as `sh`
// does.
func TestRealTerminalTabListsCommandsAndEnterAnnouncesItself(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	p := newTmuxPane(t)
	p.startBox(t.TempDir())
	first, second := commands[0], commands[1]

	p.mark()
	p.line("boxes")
	if s := p.waitFor("running", "web[uts,mnt,pid] ▸"); strings.Contains(s, first.Summary) {
		t.Fatalf("a fresh prompt shows the menu:\n%s", s)
	}
	p.keys("Tab")
	p.waitFor(first.Name, first.Summary, second.Name, second.Summary)
	p.line("hostname tabbed")
	p.waitFor("is now tabbed")

	p.mark()
	p.line("enter")
	p.waitFor("── /bin/sh in box web's uts, mnt, pid namespaces", "`exit` comes back to stepbox")
	p.line("echo IN-$(hostname)")
	p.waitFor("IN-tabbed")
	p.mark()
	p.line("exit")
	p.waitFor("back in stepbox (the shell exited with status 0)", "web[uts,mnt,pid] ▸")

	p.mark()
	p.line("sh")
	p.waitFor("── a shell in box web", "[web] ")
	p.line("exit 3")
	p.waitFor("back in stepbox: the box's shell exited with status 3", "web[uts,mnt,pid] ▸")

	// A box whose only namespace of its own is its user namespace (every
	// rootless box, at first): enter says that one.
	p.line("new solo --user")
	p.waitFor("solo[user] ▸")
	p.mark()
	p.line("enter")
	p.waitFor("── /bin/sh in box solo's user namespace, joined from the host", "`exit` comes back to stepbox")
	p.line("exit")
	p.waitFor("back in stepbox (the shell exited with status 0)", "solo[user] ▸")

	p.line("exit")
	p.waitFor("STEPBOX-EXIT=0")
	p.saneTerminal("after enter and sh")
}
