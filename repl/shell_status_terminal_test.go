package repl

import (
	"strings"
	"testing"
	"time"
)

// Back from `enter` or `sh`, stepbox says how the box's shell ended from
// its wait status: left with Ctrl-D after a Ctrl-C'd command, the shell
// exited with that command's status, 130, and nothing killed it; a shell
// that became `sleep` (exec) and was Ctrl-C'd was killed by SIGINT
// (ut26 F13).
func TestRealTerminalTellsAShellThatExited130FromOneKilledBySIGINT(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	p := newTmuxPane(t)
	p.startBox(t.TempDir())
	// sleepThenCtrlC runs line in the box's shell, waits until `sleep
	// secs` runs, and presses Ctrl-C.
	sleepThenCtrlC := func(line, secs string) {
		t.Helper()
		p.line(line)
		for deadline := time.Now().Add(20 * time.Second); len(sleepingFor(secs)) == 0; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s never ran:\n%s", line, p.screen())
			}
		}
		p.keys("C-c")
	}
	for _, c := range []struct{ how, prompt string }{{"enter", "\n#"}, {"sh", "[web] "}} {
		p.mark()
		p.line(c.how)
		p.waitFor("comes back to stepbox", c.prompt)
		sleepThenCtrlC("sleep 1091", "1091")
		for deadline := time.Now().Add(10 * time.Second); len(sleepingFor("1091")) > 0 && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
		p.keys("C-d")
		if s := p.waitFor("back in stepbox: the box's shell exited with status 130", "web[uts,mnt,pid] ▸"); strings.Contains(s, "killed by") {
			t.Errorf("%s: a shell left with Ctrl-D is reported killed:\n%s", c.how, s)
		}

		p.mark()
		p.line(c.how)
		p.waitFor("comes back to stepbox", c.prompt)
		sleepThenCtrlC("exec sleep 1092", "1092")
		if s := p.waitFor("back in stepbox: the box's shell was killed by SIGINT", "web[uts,mnt,pid] ▸"); strings.Contains(s, "exited with status") {
			t.Errorf("%s: a shell killed by SIGINT is reported as an exit:\n%s", c.how, s)
		}
	}
	p.line("exit")
	p.waitFor("STEPBOX-EXIT=0")
}
