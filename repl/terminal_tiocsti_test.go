package repl

import (
	"strings"
	"testing"
	"time"
)

// No command of a box, even one that reads and writes the learner's
// terminal, has that terminal as its controlling one: ioctl(TIOCSTI)
// would otherwise let it type `!CMD` into stepbox's prompt, run as the
// host's root (CVE-2017-5226 in bubblewrap). The probe asks with a NULL
// character: EFAULT is a permission granted, EPERM one refused; nothing
// is typed.
func TestABoxCommandCannotTypeIntoTheSessionsTerminal(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	p := newTmuxPane(t)
	p.startBox(t.TempDir())
	p.mark()
	p.line("caps docker")
	p.waitFor("capabilities (CapEff)", "web[uts,mnt,pid] ▸")
	probe := stepboxBinary(t) + " __probe -- tiocsti"
	check := func(how, screen string) {
		t.Helper()
		if !strings.Contains(screen, `"state":"closed"`) || !strings.Contains(screen, "operation not permitted") || strings.Contains(screen, "bad address") {
			t.Errorf("%s: a box command may push input into the session's terminal:\n%s", how, screen)
		}
		if !strings.Contains(screen, "controlling terminal: none") {
			t.Errorf("%s: the command has a controlling terminal:\n%s", how, screen)
		}
	}

	p.mark()
	p.line("exec " + probe)
	check("exec", p.waitFor(`"name":"tiocsti"`, "web[uts,mnt,pid] ▸"))

	p.mark()
	p.line("enter -- " + probe)
	check("enter", p.waitFor(`"name":"tiocsti"`, "web[uts,mnt,pid] ▸"))

	p.mark()
	p.line("sh")
	p.waitFor("[web] ")
	p.mark()
	p.line(probe)
	check("sh", p.waitFor(`"name":"tiocsti"`))

	// Ctrl-C reaches the shell's command through the session, and only it.
	p.mark()
	p.line("sleep 60")
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	p.keys("C-c")
	p.waitFor("^C\n[web] ")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Ctrl-C took %v to end sleep in the box's shell", d)
	}
	p.line("echo AFTER-$?")
	p.waitFor("AFTER-130")
	p.line("exit")
	p.waitFor("back in stepbox", "web[uts,mnt,pid] ▸")
	p.line("exit")
	p.waitFor("STEPBOX-EXIT=0")
	p.saneTerminal("after sh")
}
