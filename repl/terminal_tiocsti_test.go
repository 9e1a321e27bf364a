package repl

import (
	"os"
	"path/filepath"
	"strconv"
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
	// exec and enter's commands hold no terminal at all (pipes); sh's
	// shell a pty of its own, the session's to relay.
	check := func(how, screen string) {
		t.Helper()
		if !strings.Contains(screen, `"state":"closed"`) || strings.Contains(screen, "bad address") {
			t.Errorf("%s: a box command may push input into the session's terminal:\n%s", how, screen)
		}
		own := how == "sh"
		if own && (!strings.Contains(screen, `"via":"own"`) || strings.Contains(screen, "controlling terminal: none")) {
			t.Errorf("%s: the box's shell has no terminal of its own as its controlling one:\n%s", how, screen)
		}
		if !own && (!strings.Contains(screen, `"via":"noterminal"`) || !strings.Contains(screen, "controlling terminal: none")) {
			t.Errorf("%s: the command holds a terminal:\n%s", how, screen)
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
	// The terminal's Ctrl-C goes to its foreground process group: while
	// the box's shell runs, that is stepbox's alone, never the box's
	// executor, its PID 1 or the shell.
	stepbox := strconv.Itoa(p.runs[0].pid)
	if fg := statField(t, stepbox, 8); fg != statField(t, stepbox, 5) {
		t.Errorf("while sh runs, the terminal's foreground group is %s, not stepbox's %s", fg, statField(t, stepbox, 5))
	} else if in := inProcessGroup(t, fg); len(in) != 1 || in[0] != stepbox {
		t.Errorf("the terminal's foreground group %s holds %v, not stepbox (%s) alone", fg, in, stepbox)
	}

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

	// In `enter`, the enter process passes it on.
	p.mark()
	p.line("enter")
	p.waitFor("#")
	p.mark()
	p.line("sleep 60")
	time.Sleep(300 * time.Millisecond)
	p.keys("C-c")
	p.line("echo ENTERED-$?")
	p.waitFor("ENTERED-130")
	p.line("exit")
	p.waitFor("back in stepbox", "web[uts,mnt,pid] ▸")
	p.line("exit")
	p.waitFor("STEPBOX-EXIT=0")
	p.saneTerminal("after sh")
}

// statField is field n (1-based, as proc(5) numbers them) of
// /proc/PID/stat.
func statField(t *testing.T, pid string, n int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return f[n-3]
}

// inProcessGroup lists the PIDs of process group pgrp.
func inProcessGroup(t *testing.T, pgrp string) []string {
	t.Helper()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var in []string
	for _, st := range stats {
		pid := filepath.Base(filepath.Dir(st))
		b, err := os.ReadFile(st)
		if err != nil {
			continue // gone meanwhile
		}
		s := string(b)
		if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) > 2 && f[2] == pgrp {
			in = append(in, pid)
		}
	}
	return in
}
