package repl

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"stepbox/primitives/cgroups"
)

// A typed line of the demo: the prompt, then the command.
var demoPrompt = regexp.MustCompile(`^(?:stepbox|[A-Za-z][A-Za-z0-9_-]*\[[^\]]*\]) > (.*)$`)

// wideLines returns the lines of a demo's output wider than columns,
// leaving out what a program in the box or on the host printed (the
// lines after a typed `exec` or `!` line, up to the next frame, prompt
// or blank line): stepbox prints that as the program wrote it, as a
// terminal would, and folds only its own words.
func wideLines(out string, columns int) []string {
	var wide []string
	program := false
	for _, l := range strings.Split(out, "\n") {
		if m := demoPrompt.FindStringSubmatch(l); m != nil {
			program = strings.HasPrefix(m[1], "exec ") || strings.HasPrefix(m[1], "!")
		} else if l == "" || strings.HasPrefix(l, "╭") {
			program = false
		} else if program {
			continue
		}
		if utf8.RuneCountInString(l) > columns {
			wide = append(wide, l)
		}
	}
	return wide
}

// cgroupPlace is where the host put the session's cgroup: it differs
// from machine to machine (a login's slice, a job's scope), not from run
// to run.
var cgroupPlace = regexp.MustCompile(`:/(?:[^ \n]*?/)?stepbox-`)

// What lesson 2's programs print that changes from run to run: the key
// ipcmk draws at random, and the time that date(1) reads.
var (
	ipcKey    = regexp.MustCompile(`\b0x[0-9a-f]{8}\b`)
	anyNumber = regexp.MustCompile(`<pid\d+>|\b\d+\b`)
	dateOut   = regexp.MustCompile(`\b[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d [A-Z]+ \d{4}\b`)
)

// TestDemoTwoFitsEightyColumns plays lesson 2 for a class at 80 columns,
// as `stepbox demo 2 --no-pause`, and compares it with a golden
// transcript: every line stepbox writes fits, and the lesson's commands
// print what the text says they print.
func TestDemoTwoFitsEightyColumns(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	state := t.TempDir()
	cmd := exec.Command(stepboxBinary(t), "--state-dir", state, "demo", "2", "--no-pause", "--plain")
	cmd.Env = append(os.Environ(), "COLUMNS=80")
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("demo 2: %v\n%s", err, buf.String())
	}
	out := buf.String()
	for _, l := range wideLines(out, 80) {
		t.Errorf("a line is %d wide, wider than 80: %q", utf8.RuneCountInString(l), l)
	}
	out = strings.ReplaceAll(out, state, "<state>")
	out = cgroupPlace.ReplaceAllString(out, ":<place>/stepbox-")
	out = ipcKey.ReplaceAllString(out, "<key>")
	if host, err := os.Hostname(); err == nil {
		// exec hostname in a box that shares the host's UTS namespace.
		out = regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(host)+`$`).ReplaceAllString(out, "<hostname>")
	}
	out = dateOut.ReplaceAllString(out, "<date>")
	var n normalizer
	// Which numbers are PIDs depends on where stepbox runs (short PIDs in
	// a container, a mount more or less on the host): the golden file
	// keeps the words and the layout, every number is <n>.
	got := anyNumber.ReplaceAllString(n.normalize(out), "<n>") + "\n"
	// Lesson 2 reads /proc/self/cgroup: a line per v1 hierarchy, one on
	// v2. The golden file is this host's kind; elsewhere only widths count.
	golden := "testdata/demo2_80.out"
	mode, err := cgroups.Detect(cgroups.DefaultRoot)
	if err != nil {
		t.Fatal(err)
	}
	if mode == cgroups.Unified {
		golden = "testdata/demo2_80.v2.out"
	}
	if *update {
		os.WriteFile(golden, []byte(got), 0o644)
		return
	}
	want, err := os.ReadFile(golden)
	if os.IsNotExist(err) && mode == cgroups.Unified {
		t.Logf("no %s yet: widths checked, transcript not compared", golden)
		return
	}
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if unfold(got) != unfold(string(want)) {
		t.Errorf("demo 2 differs from %s (-update rewrites it):\n%s", golden, lineDiff(string(want), got))
	}
}

// The rule that leaves program output out of the width check leaves out
// nothing stepbox writes itself.
func TestWideLinesSkipsOnlyProgramOutput(t *testing.T) {
	long := strings.Repeat("x", 90)
	out := strings.Join([]string{
		"web[net] > exec ip link", long, "",
		"web[net] > hostname web", long,
		"╭" + long,
		"web[net] > !cat /proc/1/net/tcp6", long, "╭" + long,
	}, "\n")
	got := wideLines(out, 80)
	if len(got) != 3 {
		t.Fatalf("wide lines %d, want 3 (after a step, and two frames):\n%s", len(got), fmt.Sprint(got))
	}
}
