package repl

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// The rootless tests below run stepbox as uid 65534 with no capability
// (runRootless), as a learner without sudo does.

// cgroupsDelegated says whether a user manager delegates cgroups to uid
// 65534: there the cgroup steps work rootless, and what is asserted of
// their refusal does not apply.
func cgroupsDelegated() bool {
	_, err := os.Stat("/sys/fs/cgroup/user.slice/user-65534.slice/user@65534.service")
	return err == nil
}

// rootlessScript runs script rootless in a state dir of its own, at
// width columns, and checks that nothing is left.
func rootlessScript(t *testing.T, width int, script ...string) string {
	t.Helper()
	hostUnchanged(t)
	state := rootlessStateDir(t)
	got, err := runRootlessWidth(t, state, strings.Join(script, "\n")+"\n", width, "run", "-")
	if err != nil {
		t.Fatalf("rootless run: %v\n%s", err, got)
	}
	noSessionLeft(t, state)
	return got
}

// flat is s with every run of white space one space: what a test reads
// in text folded to the width.
func flat(s string) string { return strings.Join(strings.Fields(s), " ") }

// Rootless, `new` gives the box a user namespace of its own: lesson 1's
// first answer says its user link differs, and the box's link does.
func TestRootlessLessonOneAnswersThatTheBoxUserLinkDiffers(t *testing.T) {
	needRoot(t)
	got := rootlessScript(t, 100,
		"lesson 1",
		"!ls -l /proc/$$/ns",
		"!ls -Li /proc/$PPID/ns",
		"new web",
		"!echo links: $(readlink /proc/$BOX_PID/ns/user) $(readlink /proc/$PPID/ns/user)",
		"!ls -l /proc/$BOX_PID/ns",
	)
	m := regexp.MustCompile(`(?m)^links: (\S+) (\S+)$`).FindStringSubmatch(got)
	if m == nil || m[1] == m[2] {
		t.Fatalf("the box's user link does not differ from stepbox's (%q):\n%s", m, got)
	}
	if !strings.Contains(got, "Your prediction? One: user.") {
		t.Errorf("the answer does not say the box's user link differs:\n%s", got)
	}
	if strings.Contains(got, "Your prediction? No.") {
		t.Errorf("the answer says no link differs, which the screen contradicts:\n%s", got)
	}
}

// Rootless without delegation, lesson 2's cgroup step says why it cannot
// be built and what the learner can do (ask the admin: no grub command
// as theirs to run), shows what still works, `check` and `hint` say so,
// and `next` marks it refused, not skipped.
func TestRootlessCgroupStepSaysWhyAndNextMarksItRefused(t *testing.T) {
	needRoot(t)
	if cgroupsDelegated() {
		t.Skip("a user manager delegates cgroups to uid 65534 here: the cgroup step works rootless")
	}
	got := rootlessScript(t, 100, "lesson 2", "next", "next", "next", "next", "next", "check", "hint", "next", "lesson list")
	step := flat(got[strings.Index(got, "Step 6 of 8"):])
	for _, want := range []string{
		"This step cannot be built rootless here.",
		"cgroup new: refused rootless: no cgroup is delegated to you",
		"ask the machine's admin",
		"meanwhile next goes on to the next step",
		"try: exec cat /proc/self/cgroup unshare cgroup",
		"step 6 cannot be built rootless here: cgroup new: refused rootless",
		"`next` goes on, and marks this step refused, not failed.",
		"step 6 cannot be built rootless here: marked refused, not failed",
		"(1 cannot be built here)",
	} {
		if !strings.Contains(step, want) {
			t.Errorf("step 6 rootless does not say %q:\n%s", want, step)
		}
	}
	for _, wrong := range []string{"step 6 is not done yet", "Hint: Make the box a cgroup", "step 6 has not passed its check yet: skipped"} {
		if strings.Contains(step, wrong) {
			t.Errorf("step 6 rootless says %q, as if it could be done:\n%s", wrong, step)
		}
	}
}

// Rootless, lesson 2's user step shows commands that work there, asks its
// question, and answers it after the command that shows the answer.
func TestRootlessUserStepShowsItsCommandsAndAsksItsPrediction(t *testing.T) {
	needRoot(t)
	script := []string{"lesson 2"}
	for range 7 {
		script = append(script, "next")
	}
	script = append(script, "new u", "unshare uts", "hostname inside-u", "exec id -u", "!cat /proc/$BOX_PID/uid_map")
	got := rootlessScript(t, 100, script...)
	step := got[strings.Index(got, "Step 8 of 8"):]
	if strings.Contains(step, "Try both orders:") {
		t.Errorf("the step's text still ends in a list it does not show:\n%s", step)
	}
	question := strings.Index(step, "Predict, then run: exec id -u prints 0 in box u.")
	shown := strings.Index(step, "try:\n    new u\n")
	answer := strings.Index(step, "Your prediction? The one on the right of uid_map: yours")
	if shown < 0 || question < 0 || answer < 0 || answer < question {
		t.Errorf("the step does not show its rootless commands (%d), ask (%d) and then answer (%d) its question:\n%s", shown, question, answer, step)
	}
	if !regexp.MustCompile(`(?m)^\s*0\s+65534\s+1$`).MatchString(step) {
		t.Errorf("box u's uid_map is not 0 → 65534:\n%s", step)
	}
}

// Rootless, `mount proc` in a box whose PID namespace came after
// pivot_root is refused with the way that works, not sent to the kernel
// to fail with a do-line claiming the box has a /proc.
func TestRootlessMountProcAfterALatePIDNamespaceIsRefusedWithTheWayOut(t *testing.T) {
	needRoot(t)
	got := rootlessScript(t, 300,
		"new cell", "unshare mnt", "mount overlay base", "pivot_root",
		"unshare pid",
		"-mount proc",
		"!echo proc-mounts: $(grep -c ' /proc proc ' /proc/$BOX_PID/mountinfo)",
	)
	if !strings.Contains(flat(got), "mount proc: refused rootless: after pivot_root or chroot") ||
		!strings.Contains(flat(got), "build a new box with `unshare mnt pid` before `pivot_root`") {
		t.Errorf("mount proc after a late unshare pid is not refused with the way out:\n%s", got)
	}
	if strings.Contains(got, "has its /proc already") || strings.Contains(got, "EPERM") {
		t.Errorf("mount proc reached the kernel, or claims a /proc the box lacks:\n%s", got)
	}
	if !strings.Contains(got, "proc-mounts: 0") {
		t.Errorf("the box has a /proc mount after all:\n%s", got)
	}
}

// Rootless, `mount dev` and `mount sys` after pivot_root work as rootless
// podman's do: /dev/null in the box is the host's character device 1:3,
// bound in (a user namespace may not mknod one), writes to it vanish,
// and /sys is a read-only sysfs of the box's network namespace.
func TestRootlessMountDevAndSysAfterPivotRootBindTheHostsDevices(t *testing.T) {
	needRoot(t)
	got := rootlessScript(t, 300,
		"new cage", "unshare mnt pid net", "mount overlay base", "pivot_root",
		"mount dev",
		"mount sys",
		"exec sh -c 'echo null: $(stat -c \"%t:%T %F\" /dev/null); echo hi > /dev/null && echo writes: $(stat -c %s /dev/null)'",
		"exec sh -c 'echo zero: $(head -c 3 /dev/zero | od -An -tx1); echo links: $(ls /sys/class/net)'",
		"!echo upper: $(ls $BOX_UPPER/dev 2>&1)",
		"!echo sys: $(awk '$5 == \"/sys\" {print $6}' /proc/$BOX_PID/mountinfo) $(grep ' /sys ' /proc/$BOX_PID/mountinfo | sed 's/.* - //')",
		"!echo pts: $(grep ' /dev/pts ' /proc/$BOX_PID/mountinfo | sed 's/.* - //')",
		"mount dev /dev2",
		"exec stat -c 'dev2: %t:%T %F' /dev2/urandom",
	)
	for _, want := range []string{
		"null: 1:3 character special file", "writes: 0", "zero: 00 00 00", "links: lo",
		"pts: devpts devpts", "dev2: 1:9 character special file",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("rootless mount dev/sys: no %q:\n%s", want, got)
		}
	}
	if !regexp.MustCompile(`(?m)^sys: ro,\S* sysfs `).MatchString(got) {
		t.Errorf("/sys in the box is not a read-only sysfs:\n%s", got)
	}
	if strings.Contains(got, "refused rootless") || strings.Contains(got, "error:") {
		t.Errorf("a step was refused or failed:\n%s", got)
	}
}

// Rootless without delegation, the cgroup views say that cgroups are not
// available here and point to doctor, not to the refused `cgroup new`.
func TestRootlessCgroupViewsPointToDoctor(t *testing.T) {
	needRoot(t)
	if cgroupsDelegated() {
		t.Skip("a user manager delegates cgroups to uid 65534 here: `cgroup new` works rootless")
	}
	got := rootlessScript(t, 300, "new web", "-cgroup", "-cgroup show", "status")
	if n := strings.Count(got, "cgroups are not available rootless on this host"); n != 3 {
		t.Errorf("cgroup, cgroup show and status do not each say cgroups are not available rootless (%d):\n%s", n, got)
	}
	if !strings.Contains(got, "`stepbox doctor` says what it needs") {
		t.Errorf("no pointer to doctor:\n%s", got)
	}
	if strings.Contains(got, "`cgroup new` first") || strings.Contains(got, "`cgroup new` makes") {
		t.Errorf("a view sends the learner to the refused `cgroup new`:\n%s", got)
	}
}

// The start-up lines rootless fold at words to the terminal's width: the
// same words as on a terminal too wide to fold them, none broken.
func TestRootlessStartUpLinesFoldAtWords(t *testing.T) {
	needRoot(t)
	banner := func(width int) []string {
		got := rootlessScript(t, width, "new web")
		var lines []string
		for _, l := range strings.Split(got, "\n") {
			if strings.HasPrefix(l, "stepbox: ") || (len(lines) > 0 && strings.HasPrefix(l, "         ")) {
				lines = append(lines, l)
			} else if len(lines) > 0 {
				break
			}
		}
		return lines
	}
	folded, wide := banner(80), banner(1000)
	if len(folded) < 4 || len(wide) == 0 {
		t.Fatalf("the start-up lines are not folded:\n%s", strings.Join(folded, "\n"))
	}
	for _, l := range folded {
		if utf8.RuneCountInString(l) > 80 {
			t.Errorf("a start-up line is wider than 80 columns: %q", l)
		}
	}
	words := func(lines []string) string {
		var w []string
		for _, f := range strings.Fields(strings.Join(lines, " ")) {
			if f != "stepbox:" {
				w = append(w, f)
			}
		}
		return strings.Join(w, " ")
	}
	if got, want := words(folded), words(wide); got != want {
		t.Errorf("folding changed the words (one was broken):\n%s\nunfolded:\n%s", strings.Join(folded, "\n"), strings.Join(wide, "\n"))
	}
}

// Rootless, lesson 4's host-PID /proc step cannot be built: it says why,
// asks nothing, and after the refused `mount proc` no answer describes a
// /proc that was never mounted.
func TestRootlessRefusedProcStepShowsNoAnswerTheScreenContradicts(t *testing.T) {
	needRoot(t)
	got := rootlessScript(t, 100, "lesson 4", "next", "next", "next",
		"new cell", "unshare mnt", "mount overlay base", "pivot_root",
		"-mount proc", "exec ps -o pid,comm", "next")
	step := flat(got[strings.Index(got, "Step 4 of 6"):strings.Index(got, "Step 5 of 6")])
	if !strings.Contains(step, "This step needs root, and stepbox runs rootless.") {
		t.Errorf("step 4 does not say it needs root:\n%s", step)
	}
	for _, wrong := range []string{"Predict, then run:", "Your prediction?", "Every process on the host."} {
		if strings.Contains(step, wrong) {
			t.Errorf("step 4 rootless shows %q, for a /proc never mounted:\n%s", wrong, step)
		}
	}
	if !strings.Contains(step, "step 4 cannot be built rootless here: marked refused, not failed") {
		t.Errorf("next does not mark step 4 refused:\n%s", step)
	}
}
