package repl

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// joinedScreen is the pane's screen as one line: what stepbox folds to
// the width reads as it was written.
func joinedScreen(p *tmuxPane) string { return strings.Join(strings.Fields(p.screen()), " ") }

// waitJoined is waitFor for texts stepbox may fold across lines: it waits
// until the joined screen holds them all, and returns it.
func waitJoined(p *tmuxPane, texts ...string) string {
	p.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		s := joinedScreen(p)
		if !slices.ContainsFunc(texts, func(x string) bool { return !strings.Contains(s, x) }) {
			return s
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("waited for %q; the screen is:\n%s", texts, p.screen())
		}
	}
}

// What stepbox says before it hands the terminal to `enter`'s shell is
// what the shell joins (Box.Enter): asked for uts in a box with a user
// namespace, every namespace of the box's own comes with the user
// namespace, and the cgroup is the one the box's processes are in,
// stepbox's tracking cgroup, then, after `cgroup attach`, the box's own.
// It named only the namespaces asked for, and a cgroup only once the box
// had one of its own, attached or not.
func TestEnterSaysEverythingItJoinsBeforeHandingOver(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	p := newTmuxPane(t)
	state := t.TempDir()
	p.mark()
	p.stepbox(state, stepboxBinary(t)+" --state-dir "+state+"; echo STEPBOX-EXIT=$?")
	p.waitFor("stepbox ▸")
	p.line("new uw --user")
	p.waitFor("uw[user] ▸")
	p.line("unshare uts ipc")
	p.waitFor("uw[user,uts,ipc] ▸")
	for _, c := range []struct{ before, cgroup string }{
		{"", "in stepbox's tracking cgroup uw.track (the box has no cgroup of its own"},
		{"cgroup new", "in stepbox's tracking cgroup uw.track (the box's cgroup uw-"},
		{"cgroup attach", "in the box's cgroup uw-"},
	} {
		if c.before != "" {
			// The prompt after the step: the line typed shows the one
			// before it, which after `cgroup new` is the same.
			p.mark()
			p.line(c.before)
			after := map[string]int{"cgroup new": 1, "cgroup attach": 2}[c.before]
			for deadline := time.Now().Add(20 * time.Second); strings.Count(p.screen(), "uw[user,uts,ipc|cg] ▸") < after; time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%s did not end:\n%s", c.before, p.screen())
				}
			}
		}
		p.mark()
		p.line("enter uts")
		said := waitJoined(p, "`exit` comes back to stepbox")
		for _, want := range []string{"/bin/sh in box uw's user, uts, ipc namespaces, joined from the host as nsenter does", c.cgroup, "with the box's capabilities, no_new_privs and seccomp settings"} {
			if !strings.Contains(said, want) {
				t.Errorf("after %q, enter uts does not say %q:\n%s", c.before, want, said)
			}
		}
		p.line("exit")
		p.waitFor("back in stepbox (the shell exited with status 0)")
	}
	p.line("exit")
	p.waitFor("STEPBOX-EXIT=0")
}
