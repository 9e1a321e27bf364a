package repl

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"stepbox/lessons"
)

// predictionsInOrder lists, for each prediction of l, what the demo shows
// in order: the question, the command that answers it, the answer.
func predictionsInOrder(l *lessons.Lesson) []string {
	var out []string
	for _, st := range l.Steps {
		if st.Predict != nil && st.Unmet() == "" {
			// The command's end: a long one is folded (outside its quotes).
			words := strings.Fields(glueQuoted(lessons.Names{}.Fill(strings.TrimPrefix(st.Solution[st.Evidence], "-"))))
			out = append(out, "Predict:", unglue(words[len(words)-1])+"\n", "Answer")
		}
	}
	return out
}

// inOrder reports whether each part occurs in s after the one before it.
func inOrder(s string, parts ...string) bool {
	at := 0
	for _, p := range parts {
		i := strings.Index(s[at:], p)
		if i < 0 {
			return false
		}
		at += i + len(p)
	}
	return true
}

// Issue 13: a box from an earlier lesson passed lesson 6's step 2 while
// the learner's web had no root.
func TestALessonJudgesTheBoxesMadeForIt(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	sh, out := lessonShell(t)
	execute(t, sh, out, "new old", "unshare mnt pid", "mount overlay base", "pivot_root", "mount dev", "mount sys")
	out.Reset()
	execute(t, sh, out, "lesson 6")
	if !strings.Contains(out.String(), "Box old was made before this lesson") {
		t.Errorf("lesson 6 does not say old is left from before:\n%s", out)
	}
	execute(t, sh, out, "new web", "unshare uts ipc net pid mnt", "hostname web", "next", "ns")
	if !strings.Contains(out.String(), "✓ Step 1 of 6 done: box web") || strings.Contains(out.String(), "✓ Step 2") {
		t.Fatalf("step 2 judged old, made before the lesson:\n%s", out)
	}
	out.Reset()
	execute(t, sh, out, "check")
	if !strings.Contains(out.String(), "✗ step 2 is not done yet: box web") {
		t.Fatalf("check of step 2:\n%s", out)
	}
}

// A command that fails prints its output and its error once and earns
// no ✓; the step's ✓ comes with the next line that works.
func TestAFailedLineEarnsNoStepDoneLine(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	sh, out := lessonShell(t)
	execute(t, sh, out, "lesson 1", "new web", "unshare uts", "next", "next", "next")
	out.Reset()
	// The shell's loop: Execute, then report what it returns.
	if err := sh.Execute(context.Background(), "exec sh -c 'sleep 600 >/dev/null 2>&1 & echo started; exit 3'"); err != nil {
		sh.reportError(err)
	}
	// A line that failed earns no ✓, even where the step's check is met
	// (ut26: a ✓ beside an error read as praise for it); the next line
	// that works gets it.
	if !inOrder(out.String(), "started", "error: exec sh: exit status 3") || strings.Count(out.String(), "error:") != 1 || strings.Contains(out.String(), "✓ Step 4") {
		t.Fatalf("want the output, the error once, and no ✓:\n%s", out)
	}
	out.Reset()
	execute(t, sh, out, "exec true")
	if !strings.Contains(out.String(), "✓ Step 4 of 6 done") {
		t.Fatalf("the next line that works does not get the step's ✓:\n%s", out)
	}
}

// `new` with no name makes box1: the lesson's hints, texts and commands
// then speak of box1, not of the web its file names.
func TestALessonSpeaksOfTheLearnersOwnBox(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	sh, out := lessonShell(t)
	execute(t, sh, out, "lesson 1", "new")
	out.Reset()
	execute(t, sh, out, "hint")
	if !strings.Contains(out.String(), "Box box1 still has the host's UTS") {
		t.Fatalf("hint after `new`:\n%s", out)
	}
	execute(t, sh, out, "unshare uts", "next", "next")
	if !strings.Contains(out.String(), "Give box1 the same five") {
		t.Fatalf("step 3's text:\n%s", out)
	}
	out.Reset()
	execute(t, sh, out, "next", "next", "next")
	if !strings.Contains(out.String(), "use box1") || strings.Contains(out.String(), "use web") {
		t.Fatalf("step 6's commands:\n%s", out)
	}
	out.Reset()
	execute(t, sh, out, "solution")
	if !strings.Contains(out.String(), "use box1") || !strings.Contains(out.String(), "← shows the prediction's answer") {
		t.Fatalf("step 6's solution:\n%s", out)
	}
}

// Issue 13: demo 2 asked what `exec hostname` prints right after
// `unshare uts`, ran it only after `hostname web1`, then answered "the
// host's name". `solution --run` and the demo show each answer right
// after the command that shows it; with --auto a prediction waits longer.
func TestEachPredictionIsAnsweredRightAfterItsEvidence(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	sh, out := lessonShell(t)
	execute(t, sh, out, "lesson 2")
	out.Reset()
	execute(t, sh, out, "solution --run")
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	if !inOrder(out.String(), "unshare uts", "exec hostname\n", host+"\n", "Your prediction?", "hostname web1", "✓ Step 1 of 8 done") {
		t.Fatalf("solution --run of lesson 2 step 1:\n%s", out)
	}
	if strings.Contains(out.String(), "gives it too") {
		t.Errorf("the step asks to test a prediction already answered:\n%s", out)
	}

	dir := t.TempDir()
	demo, code := stepbox(t, "", "--state-dir", dir, "demo", "2", "--auto", "0.1")
	if code != 0 {
		t.Fatalf("demo 2 --auto 0.1: exit %d:\n%s", code, demo)
	}
	if !inOrder(demo, "Predict:", "unshare uts\n", "exec hostname\n", host+"\n", "Answer", "hostname web1") {
		t.Errorf("demo 2 step 1: the answer does not follow `exec hostname` right after `unshare uts`:\n%s", demo)
	}
	if !answersOnScreenAtPauses(demo) {
		t.Errorf("demo 2 prints something between an answer and the pause after it:\n%s", demo)
	}
	if !strings.Contains(demo, "next in 0.3s") || !strings.Contains(demo, "next in 0.1s") {
		t.Errorf("with --auto 0.1 a prediction waits 0.3s, a step 0.1s:\n%s", demo)
	}
	assertNoSessionState(t, dir)
}

// A learner who renames the box before `exec hostname` sees web1, so the
// answer "the host's name" must not follow it: it waits for `next`.
func TestAnAnswerWaitsWhenItsCommandRunsTooLate(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	sh, out := lessonShell(t)
	execute(t, sh, out, "lesson 2", "new web", "unshare uts", "hostname web1", "exec hostname")
	if strings.Contains(out.String(), "Your prediction?") {
		t.Fatalf("the answer followed `exec hostname` run after `hostname web1`:\n%s", out)
	}
	out.Reset()
	execute(t, sh, out, "next")
	if !inOrder(out.String(), "Your prediction? (About exec hostname right after unshare uts, before hostname web1.) The host's", "Step 2 of 8") {
		t.Fatalf("`next` did not answer for the step's moment:\n%s", out)
	}
}

// The re-tester's finding: a command run before the state its prediction
// is about (`breakout` before `chroot`, `echo $$` before `unshare pid`)
// printed output that the answer after it contradicted.
func TestAnAnswerWaitsWhenItsCommandRunsTooEarly(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	sh, out := lessonShell(t)
	execute(t, sh, out, "lesson 4", "next", "new jail", "unshare mnt", "mount overlay base")
	if err := sh.Execute(context.Background(), "breakout"); err == nil {
		t.Fatalf("breakout before chroot did not fail:\n%s", out)
	}
	if strings.Contains(out.String(), "Your prediction?") {
		t.Fatalf("the answer followed `breakout` run before `chroot`:\n%s", out)
	}
	out.Reset()
	execute(t, sh, out, "chroot", "breakout")
	if !strings.Contains(out.String(), "Your prediction?") {
		t.Fatalf("no answer after `breakout` run after `chroot`:\n%s", out)
	}
}

// answersOnScreenAtPauses reports whether every Answer frame of a demo's
// output is followed by nothing but the pause (--auto's "next in"): what
// the pause leaves on screen ends with the answer.
func answersOnScreenAtPauses(demo string) bool {
	lines := strings.Split(demo, "\n")
	n := 0
	for i := 0; i < len(lines); i++ {
		if !strings.Contains(lines[i], "│   Answer") {
			continue
		}
		n++
		for i < len(lines) && !strings.HasPrefix(lines[i], "╰") {
			i++
		}
		i++
		for i < len(lines) && strings.TrimSpace(lines[i]) == "" {
			i++
		}
		if i >= len(lines) || !strings.Contains(lines[i], "next in") {
			return false
		}
	}
	return n > 0
}

// The tester's finding 1: demo 1 ran the rest of a step after its answer,
// and the answer scrolled off an 80×30 screen before the pause.
func TestTheDemoPausesWithTheAnswerOnScreen(t *testing.T) {
	demo, code := stepbox(t, "", "--state-dir", t.TempDir(), "demo", "1", "--auto", "0.05")
	if code != 0 {
		t.Fatalf("demo 1 --auto 0.05: exit %d:\n%s", code, demo)
	}
	if !answersOnScreenAtPauses(demo) {
		t.Fatalf("an answer is followed by output before the demo pauses:\n%s", demo)
	}
}

// The tester's finding 2: `exec` in a box that shares the host's mount
// namespace and root changed the host's files without a word. It says so,
// once per box, and not once the box has a mount namespace of its own.
func TestExecInTheHostsRootSaysSoOnce(t *testing.T) {
	sh, out := lessonShell(t)
	execute(t, sh, out, "new web", "exec true", "exec true")
	if n := strings.Count(out.String(), "box web shares the host's root and mounts"); n != 1 {
		t.Fatalf("want the warning once, got %d:\n%s", n, out)
	}
	out.Reset()
	execute(t, sh, out, "new db", "unshare mnt", "exec true")
	if strings.Contains(out.String(), "shares the host's root") {
		t.Fatalf("a box with its own mount namespace was warned:\n%s", out)
	}
}

// The tester's finding 9: with --state-dir, the progress still went to
// $XDG_STATE_HOME. A state dir the learner gives keeps it too.
func TestTheStateDirKeepsTheProgress(t *testing.T) {
	xdg, dir := t.TempDir(), t.TempDir()
	t.Setenv("XDG_STATE_HOME", xdg)
	if out, code := stepbox(t, "lesson 1\n", "--state-dir", dir); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "progress.json")); err != nil {
		t.Errorf("no progress in the state dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(xdg, "stepbox", "progress.json")); err == nil {
		t.Errorf("progress went to $XDG_STATE_HOME as well")
	}
}

// The tester's finding 16: `stepbox demo 1 | head` killed stepbox with
// SIGPIPE and left the session's state and boxes behind.
func TestADemoCutOffByItsReaderTearsDown(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	cmd := exec.Command(stepboxBinary(t), "--state-dir", dir, "demo", "1", "--no-pause")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	childStepbox(t, cmd, dir, syscall.SIGTERM)
	// Read until the demo has made its box, then hang up, as head does.
	r := bufio.NewReader(out)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("the demo ended before making its box: %v", err)
		}
		if strings.Contains(line, "✓ box web") {
			break
		}
	}
	out.Close()
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 128+int(syscall.SIGPIPE) {
		t.Errorf("want exit 141 after SIGPIPE, got %v", err)
	}
	assertNoSessionState(t, dir)
}

// The tester's finding 13: `exec hostnam` said only "not found", while
// the box's PATH holds hostname.
func TestAMistypedProgramGetsDidYouMean(t *testing.T) {
	sh, out := lessonShell(t)
	execute(t, sh, out, "new web", "unshare mnt pid", "mount overlay base", "pivot_root")
	err := sh.Execute(context.Background(), "exec hostnam")
	if err == nil || !strings.Contains(err.Error(), "did you mean hostname?") {
		t.Fatalf("exec hostnam: %v", err)
	}
}

// The tester's finding 14: a pids limit below what the box already runs
// was accepted without a word, and the panel read "3 / 2".
func TestALimitBelowUsageSaysWhatHappens(t *testing.T) {
	sh, out := lessonShell(t)
	execute(t, sh, out, "new web", "unshare pid", "cgroup new", "cgroup attach",
		"exec sh -c 'sleep 30 >/dev/null 2>&1 & sleep 30 >/dev/null 2>&1 &'")
	out.Reset()
	execute(t, sh, out, "cgroup limit pids 2")
	if !strings.Contains(out.String(), "box web already runs 3 tasks, more than 2") {
		t.Fatalf("no warning for a limit below usage:\n%s", out)
	}
	out.Reset()
	execute(t, sh, out, "cgroup limit pids 10")
	if strings.Contains(out.String(), "already runs") {
		t.Fatalf("a warning for a limit above usage:\n%s", out)
	}
}

// What a lesson's check saw quotes the box: a hostname the box set itself
// through /proc with ESC ] 0 ; (retitle) and ESC [ 2 J (clear) is shown
// escaped in the "check saw" and "Step N done" lines, never raw (ut28 F1).
func TestALessonsCheckLinesEscapeWhatTheBoxNamed(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	sh, out := lessonShell(t)
	execute(t, sh, out, "lesson 1", "new web", "unshare uts", "next")
	out.Reset()
	execute(t, sh, out, `exec sh -c 'printf "w\033]0;LTITLE\007\033[2Jx" > /proc/sys/kernel/hostname'`, "check")
	got := out.String()
	if strings.ContainsAny(got, "\x1b\x07") {
		t.Errorf("a lesson line printed the box's control characters raw: %q", got)
	}
	if !strings.Contains(got, `\x1b]0;LTITLE`) {
		t.Errorf("the check's lines do not show the box's hostname escaped:\n%s", got)
	}
}
