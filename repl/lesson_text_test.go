package repl

import (
	"strings"
	"testing"
	"time"

	"stepbox/lessons"
	"stepbox/viz"
)

func TestLessonTextIsWrappedAndItsCodeKeptWhole(t *testing.T) {
	md := "A process sits in one namespace of each type: run `ls -l /proc/$$/ns` and compare **every** line.\n\n- first item, long enough to wrap onto a second line of its own\n- second"
	got := renderMarkdown(md, 40, viz.NewTheme("plain"), "  ")
	want := `  A process sits in one namespace of
  each type: run ls -l /proc/$$/ns and
  compare every line.

  • first item, long enough to wrap onto
    a second line of its own
  • second`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	for _, l := range strings.Split(got, "\n") {
		if len([]rune(l)) > 40 {
			t.Errorf("line wider than 40: %q", l)
		}
	}
}

func TestAFrameIsAsWideAsAsked(t *testing.T) {
	for _, l := range strings.Split(frame("Step 1 of 6 · Title", []string{"text"}, 60, viz.NewTheme("plain")), "\n") {
		if n := len([]rune(l)); n != 60 {
			t.Fatalf("frame line %q is %d wide, want 60", l, n)
		}
	}
}

func TestDemoTakesItsLessonAndFlagsInAnyOrder(t *testing.T) {
	course := lessons.All()
	for args, want := range map[string]demoOptions{
		"3 --auto 5":            {auto: 5 * time.Second},
		"--no-pause 3":          {noPause: true},
		"--auto=0.5 3":          {auto: 500 * time.Millisecond},
		"3 --no-pause --auto 2": {auto: 2 * time.Second, noPause: true},
	} {
		l, o, err := parseDemoArgs(course, (&globalFlags{}).flagSet("stepbox demo"), strings.Fields(args))
		if err != nil || l.Number != 3 || o != want {
			t.Errorf("%s: lesson %v, %+v, %v", args, l, o, err)
		}
	}
	for args, want := range map[string]string{
		"":            "name one lesson",
		"1 2":         "name one lesson",
		"10":          "there are lessons 1 to 9",
		"2 --auto -1": "--auto -1",
		"2 --fast":    "unknown flag --fast",
		// Given, --auto must wait: 0 would never advance by itself.
		"2 --auto 0":    "--auto 0: give the seconds to wait, more than 0",
		"2 --auto=0":    "--auto 0: give the seconds to wait, more than 0",
		"2 --auto NaN":  "more than 0",
		"2 --auto 1e30": "more than 0",
		// A negative number is a lesson out of range, not a flag.
		"-1":                  "lesson -1: there are lessons 1 to 9",
		"--no-pause -3":       "lesson -3: there are lessons 1 to 9",
		"--theme contrast -1": "lesson -1: there are lessons 1 to 9",
		"-- -1":               "lesson -1: there are lessons 1 to 9",
		// Nor is a negative or a fractional one (issue 15).
		"-1.5":           `"-1.5" is not a lesson number: the lessons are 1 to 9`,
		"-.5 --no-pause": `"-.5" is not a lesson number: the lessons are 1 to 9`,
		"-0":             "lesson 0: there are lessons 1 to 9",
		"1.5":            `"1.5" is not a lesson number: the lessons are 1 to 9`,
		"-- -1.5":        `"-1.5" is not a lesson number: the lessons are 1 to 9`,
	} {
		if _, _, err := parseDemoArgs(course, (&globalFlags{}).flagSet("stepbox demo"), strings.Fields(args)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", args, err, want)
		}
	}
}

// A lesson's ✓ line wraps at word boundaries, paths kept whole.
func TestAVerdictWrapsUnderItsText(t *testing.T) {
	th := viz.NewTheme("plain")
	got := verdict(th.Good, "✓ Step 5 of 6 done:", "box web: + /from-host, in the upper dir /run/stepbox/sessions/26337-108268/boxes/web/overlay/upper", 60, th, "")
	want := `✓ Step 5 of 6 done: box web: + /from-host, in the upper dir
  /run/stepbox/sessions/26337-108268/boxes/web/overlay/upper`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

// The tester's finding 7: a long command was folded inside its quotes,
// so the line on screen was no longer the command to type.
func TestACommandIsNeverFoldedInsideItsQuotes(t *testing.T) {
	cmd := "!nsenter -t $BOX_PID -m -p -u /bin/sh -c 'hostname; ls /; echo hello from the host > /from-host'"
	lines := strings.Split(commandLines("web[5 ns] > ", cmd, 80), "\n")
	if len(lines) != 2 || !strings.HasSuffix(lines[0], "-c") || strings.TrimSpace(lines[1]) != "'hostname; ls /; echo hello from the host > /from-host'" {
		t.Fatalf("folded:\n%s", strings.Join(lines, "\n"))
	}
	cmd = `!cat $(find /sys/fs/cgroup -name "*$BOX_ID*" | head -1)/cgroup.procs`
	if lines := strings.Split(commandLines("web[5 ns|pivot|cg] > ", cmd, 80), "\n"); len(lines) != 2 || !strings.HasPrefix(strings.TrimSpace(lines[1]), "$(find") {
		t.Errorf("a command substitution folded:\n%s", strings.Join(lines, "\n"))
	}
	md := "Run `exec sh -c 'for i in $(seq 40); do sleep 1 & done; wait'` and `cgroup limit pids 20` then look."
	for _, w := range []int{30, 40, 50, 60} {
		out := renderMarkdown(md, w, viz.NewTheme("plain"), "")
		if !strings.Contains(out, "'for i in $(seq 40); do sleep 1 & done; wait'") || !strings.Contains(out, "cgroup limit pids 20") {
			t.Errorf("width %d:\n%s", w, out)
		}
	}
}
