package repl

import (
	"strings"
	"testing"
	"time"
)

// Ctrl-C at the terminal stops a sourced script, nested or not, at the
// command it ends, even behind a '-' (which lets a failure by, not the
// learner's Ctrl-C): an `exec` (Ctrl-C cancels it) and an `enter` (Ctrl-C
// is passed on to its command; the script went on after it). The stop is
// no error: the script says where it stopped.
func TestCtrlCStopsASourcedScriptAtTheCommandItEnds(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := writeScripts(t, map[string]string{
		"outer.sb": "source exec.sb\nhostname never-outer\n",
		"exec.sb":  "-exec sleep 60\nhostname never-exec\n",
		"enter.sb": "-enter -- sleep 60\nhostname never-enter\n",
	})
	p := newTmuxPane(t)
	p.line("cd " + dir)
	p.startBox(t.TempDir())
	for _, c := range []struct{ file, line, cmd, where string }{
		{"outer.sb", "exec sleep 60", "exec sleep", "outer.sb line 1 → exec.sb line 1"},
		{"enter.sb", "enter -- sleep 60", "enter sleep", "enter.sb line 1"},
	} {
		p.mark()
		p.line("source " + c.file)
		p.waitFor(c.line)
		time.Sleep(500 * time.Millisecond)
		start := time.Now()
		p.keys("C-c")
		p.waitFor("interrupted: "+c.cmd+" (SIGINT)", "script stopped by Ctrl-C at "+c.where+"\n")
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("source %s: Ctrl-C took %v to end %s", c.file, d, c.cmd)
		}
		// What is typed next runs once the script has stopped.
		p.line("help exit")
		s := p.waitFor("tear every box down and leave")
		if strings.Contains(s, "never-") || strings.Contains(s, "error:") {
			t.Errorf("source %s went on after Ctrl-C, or called it an error:\n%s", c.file, s)
		}
	}
	p.line("exit")
	p.waitFor("STEPBOX-EXIT=0")
}
