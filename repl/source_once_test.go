package repl

import (
	"strings"
	"testing"
)

// A script typed at the prompt with `source` that stops at a failed line
// prints that line's error once, where it failed; where the script
// stopped follows, without the error again (the prompt printed it a
// second time, in "a.sb:2: stopped: …").
func TestSourceAtThePromptPrintsAFailedLinesErrorOnce(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := writeScripts(t, map[string]string{
		"a.sb": "help exit\nsource b.sb\nhelp never\n",
		"b.sb": "# b\nnosuchcmd here\nhelp never\n",
	})
	p := newTmuxPane(t)
	p.line("cd " + dir)
	state := t.TempDir()
	p.mark()
	p.stepbox(state, stepboxBinary(t)+" --state-dir "+state+"; echo STEPBOX-EXIT=$?")
	p.waitFor("stepbox ▸")
	p.mark()
	p.line("source a.sb")
	s := waitJoined(p, "script stopped at a.sb line 2 → b.sb line 2, by the error above")
	if n, m := strings.Count(s, `unknown command "nosuchcmd"`), strings.Count(s, "error:"); n != 1 || m != 1 || strings.Contains(s, "stopped:") {
		t.Errorf("the failure was printed %d times (%d errors), want once:\n%s", n, m, p.screen())
	}
	if strings.Contains(s, "help never") {
		t.Errorf("the script went on after the failure:\n%s", p.screen())
	}
	p.line("exit")
	p.waitFor("STEPBOX-EXIT=0")
}
