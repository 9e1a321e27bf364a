package repl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"stepbox/lessons"
	"stepbox/primitives"
	"stepbox/primitives/infile"
	"stepbox/viz"
)

// The lesson kit: adding a lesson is adding one file, and
// `stepbox lesson check` proves it against the real kernel. For each
// lesson it lints the file, then, in a session of its own, asserts that
// no check passes in a fresh session or on a fresh box, and that each
// step's check fails before its solution runs and passes after.

// KitMain is `stepbox lesson check [N|FILE…] [-v]`.
func KitMain(pick []string, dirs primitives.Dirs, verbose bool) int {
	course, err := kitLessons(lessons.All(), pick)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stepbox lesson check:", err)
		return 2
	}
	if os.Geteuid() != 0 && !primitives.Rootless() {
		fmt.Fprintln(os.Stderr, "stepbox lesson check: runs every solution against the kernel, which needs root or, rootless, no capability in the host's user namespace (a partly privileged uid is neither)")
		return 1
	}
	if code := checkStartup(); code != 0 {
		return code
	}
	sayRootless()
	// SIGTERM too (a CI's timeout): the session tears down what it made.
	// And SIGQUIT (Ctrl-\), which Go's own handler took to dump the
	// goroutines and exit, leaving the session's mounts and cgroups.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGQUIT)
	defer stop()
	width := outputWidth(nil)
	say := func(format string, args ...any) {
		fmt.Println(viz.Wrap(fmt.Sprintf(format, args...), width, "        "))
	}
	code := 0
	for _, l := range course {
		var log bytes.Buffer
		var out io.Writer = &log
		if verbose {
			out = os.Stdout
		}
		k := checkLesson(ctx, l, dirs, out)
		if len(k.problems) > 0 {
			code = 1
			say("FAIL  lesson %d · %s (%s)", l.Number, l.Title, l.File)
			for _, p := range k.problems {
				say("      %s", p)
			}
			if !verbose && log.Len() > 0 {
				fmt.Print(indentLines(log.String(), "      | "))
			}
			continue
		}
		if len(k.refused) == 0 {
			say("ok    lesson %d · %s: %d steps, every check fails before its solution and passes after", l.Number, l.Title, len(l.Steps))
			say("      %s (header: %d min)", l.PaceOf(k.running), l.Minutes)
			continue
		}
		say("ok    lesson %d · %s: %d steps; passed: %s; refused rootless: %s%s", l.Number, l.Title, len(l.Steps),
			stepList(k.passed), stepList(slices.Sorted(maps.Keys(k.refused))), notChecked(k.blocked))
		for _, g := range groupRefused(l, k.refused) {
			say("      %s", g)
		}
		for _, i := range slices.Sorted(maps.Keys(k.blocked)) {
			say("      %s", k.blocked[i])
		}
	}
	return code
}

// groupRefused says why each refused step was refused, once for the steps
// refused for the same reason: "steps 1–6 (cgroup new, cgroup attach):
// refused rootless: …".
func groupRefused(l *lessons.Lesson, refused map[int]string) []string {
	var order []string
	steps := map[string][]int{}
	for _, i := range slices.Sorted(maps.Keys(refused)) {
		why := refused[i]
		if steps[why] == nil {
			order = append(order, why)
		}
		steps[why] = append(steps[why], i)
	}
	var out []string
	for _, why := range order {
		label := "step " + stepList(steps[why]) + " (" + l.Steps[steps[why][0]].Title + ")"
		if len(steps[why]) > 1 {
			label = "steps " + stepList(steps[why])
		}
		out = append(out, label+": "+why)
	}
	return out
}

// stepList names steps (from 0) as a reader counts them: "1–5, 7, 8";
// "none" for none.
func stepList(steps []int) string {
	if len(steps) == 0 {
		return "none"
	}
	var parts []string
	for i := 0; i < len(steps); {
		j := i
		for j+1 < len(steps) && steps[j+1] == steps[j]+1 {
			j++
		}
		switch {
		case j == i:
			parts = append(parts, fmt.Sprint(steps[i]+1))
		case j == i+1:
			parts = append(parts, fmt.Sprint(steps[i]+1), fmt.Sprint(steps[j]+1))
		default:
			parts = append(parts, fmt.Sprintf("%d–%d", steps[i]+1, steps[j]+1))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}

// notChecked names the steps that could not be checked because they build
// on a refused one; "" for none.
func notChecked(blocked map[int]string) string {
	if len(blocked) == 0 {
		return ""
	}
	return "; not checked (they fail after a refused step): " + stepList(slices.Sorted(maps.Keys(blocked)))
}

// lessonFileMax bounds a lesson file `lesson check` reads: the longest
// lesson of the course is a few KiB.
const lessonFileMax = 1 << 20

// kitLessons picks the lessons to check: all, numbers of the course, or
// lesson files (a lesson being written need not be built in yet).
func kitLessons(course []*lessons.Lesson, pick []string) ([]*lessons.Lesson, error) {
	if len(pick) == 0 {
		return course, nil
	}
	var out []*lessons.Lesson
	for _, p := range pick {
		if strings.HasSuffix(p, ".md") {
			src, err := infile.ReadFile(p, lessonFileMax)
			if err != nil {
				return nil, fmt.Errorf("%w: give a lesson file, a regular .md file of at most %d KiB", err, lessonFileMax>>10)
			}
			l, err := lessons.Parse(p, string(src))
			if err != nil {
				return nil, err
			}
			// A file of the course keeps its number; a new one comes after.
			l.Number = len(course) + 1
			for _, c := range course {
				if c.ID == l.ID {
					l.Number = c.Number
				}
			}
			out = append(out, l)
			continue
		}
		l, err := lessonArg(course, p)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// kitResult is what checking one lesson found.
type kitResult struct {
	problems []string      // what is wrong with the lesson
	running  time.Duration // how long its solutions ran
	passed   []int         // the steps whose checks failed before their solutions and passed after
	// refused are the steps that cannot be built rootless, each with why:
	// their solution was refused (primitives.RefuseRootless) or they say
	// they need root. Not problems of the lesson.
	refused map[int]string
	// blocked are the steps after a refused one whose solution or check
	// failed: they build on what the refused step would have made.
	blocked map[int]string
}

// checkLesson runs l against the kernel in a fresh session and says what
// is wrong with it; the session's output goes to log. Rootless, a step
// that cannot be built (its solution refused, or a ```needs root block)
// is run all the same, line by line past each failure, so that what can
// be built of it is there for the next steps, and the check goes on.
// Whether a later step depends on a refused one is decided by running
// it: a later step whose solution or check then fails builds on it, and
// is listed as not checked, with what failed; every other step is held
// to the same rule as as root.
func checkLesson(ctx context.Context, l *lessons.Lesson, dirs primitives.Dirs, log io.Writer) (k kitResult) {
	k.refused, k.blocked = map[int]string{}, map[int]string{}
	add := func(format string, args ...any) { k.problems = append(k.problems, fmt.Sprintf(format, args...)) }
	if err := l.Lint(); err != nil {
		for _, e := range strings.Split(err.Error(), "\n") {
			add("%s", e)
		}
		return k
	}
	s, err := primitives.OpenSession(dirs)
	if err != nil {
		add("open a session: %v", err)
		return k
	}
	sh := NewShell(s, log, log, viz.NewTheme("plain"), 100)
	before, err := kitStores(sh)
	if err != nil {
		add("read the image and layer stores: %v", err)
		s.Close()
		return k
	}
	defer func() {
		if err := s.Close(); err != nil {
			add("teardown: %v", err)
		}
		if err := removeAdded(sh, before); err != nil {
			add("remove what the lesson added to the state dir: %v", err)
		}
	}()
	name := func(i int) string { return fmt.Sprintf("step %d (%s)", i+1, l.Steps[i].Title) }
	observe := func() *lessons.State { return lessons.Observe(s, sh.current) }

	// No check may pass vacuously: not in an empty session, not on a box
	// that has done nothing yet.
	for _, when := range []string{"in a fresh session", "on a fresh box"} {
		if when == "on a fresh box" {
			if err := sh.Execute(ctx, "new fresh"); err != nil {
				add("new fresh: %v", err)
				return k
			}
		}
		st := observe()
		for i := range l.Steps {
			if r := l.Steps[i].Judge(st); r.Pass && rootlessGiven(&l.Steps[i]) {
				fmt.Fprintf(log, "# %s: its check passes %s (%s): rootless, every box has a user namespace of its own from `new`\n", name(i), when, r.Saw)
			} else if r.Pass {
				add("%s: its check passes %s (%s)", name(i), when, r.Saw)
			}
		}
	}
	if err := sh.Execute(ctx, "rm fresh"); err != nil {
		add("rm fresh: %v", err)
		return k
	}
	lastRefused := -1
	for i := range l.Steps {
		st := &l.Steps[i]
		fmt.Fprintf(log, "# %s\n", name(i))
		// A step that cannot be built rootless is run all the same: the
		// kit holds the lesson to its word (it must fail).
		rootOnly := st.Needs != nil && st.Needs.Root && primitives.Rootless()
		refusal := st.RefusedRootless()
		if rootOnly || refusal != nil {
			start := time.Now()
			failed := runPastFailures(ctx, sh, lessons.Names(nil).FillAll(st.Solution))
			k.running += time.Since(start)
			if r := st.Judge(observe()); failed == nil && rootOnly && !r.Pass {
				// A step may need root for what its check judges (the
				// device rules only a refused step writes), not for a
				// line of its solution.
				failed = fmt.Errorf("its check fails after its solution: %s", r.Saw)
			}
			switch {
			case errors.Is(failed, context.Canceled):
				add("interrupted")
				return k
			case failed == nil && rootOnly:
				add("%s: its ```needs root block says it cannot work rootless, yet its solution ran and its check passed rootless: drop the block", name(i))
			case failed == nil:
				add("%s: its solution ran rootless, yet stepbox says it refuses %s rootless", name(i), refusal.Step)
			case rootOnly:
				k.refused[i] = fmt.Sprintf("%s (it failed: %v)", strings.Join(strings.Fields(strings.ReplaceAll(lessons.Names(nil).Fill(st.Unmet()), "**", "")), " "), failed)
			default:
				k.refused[i] = "refused rootless: " + refusal.Why + "; do: " + refusal.Do
			}
			if _, ok := k.refused[i]; ok {
				lastRefused = i // the nearest refused step is the likeliest cause
			}
			continue
		}
		// Only a step that names the kernel it needs is let off, and
		// only on an older kernel: it is explained there, not run.
		if why := st.Unmet(); why != "" {
			fmt.Fprintf(log, "# skipped: %s\n", why)
			continue
		}
		// A step after a refused one whose state it needs: not checked.
		blocked := func(what string) {
			k.blocked[i] = fmt.Sprintf("%s: not checked, it fails after refused step %d, whose state it may need: %s", name(i), lastRefused+1, what)
		}
		if r := st.Judge(observe()); r.Pass && rootlessGiven(st) {
			fmt.Fprintf(log, "# %s: its check passes before its solution runs (%s): rootless, every box has a user namespace of its own from `new`\n", name(i), r.Saw)
		} else if r.Pass {
			add("%s: its check passes before its solution runs (%s)", name(i), r.Saw)
		}
		start := time.Now()
		lines := lessons.Names(nil).FillAll(st.Solution)
		var err error
		at := 0 // the line that failed
		for ; at < len(lines) && err == nil; at++ {
			err = sh.runLines(ctx, lines[at:at+1], nil)
		}
		k.running += time.Since(start)
		if err != nil {
			r := (*primitives.RootlessRefusal)(nil)
			switch {
			case errors.Is(err, context.Canceled):
				add("interrupted")
				return k
			case errors.As(err, &r):
				// Refused on the box as it is (mount proc on a box in the
				// host's PID namespace): the rest of the step runs still.
				runPastFailures(ctx, sh, lines[at:])
				k.refused[i] = "refused rootless: " + r.Why + "; do: " + r.Do
				lastRefused = i
			case lastRefused >= 0:
				blocked(fmt.Sprintf("its solution failed: %v", err))
			default:
				add("%s: its solution failed: %v", name(i), err)
				return k
			}
			continue
		}
		if r := st.Judge(observe()); !r.Pass && lastRefused >= 0 {
			blocked(fmt.Sprintf("its check fails after its solution: %s", r.Saw))
		} else if !r.Pass {
			add("%s: its check fails after its solution: %s (finding %s)", name(i), r.Saw, r.Finding)
		} else {
			k.passed = append(k.passed, i)
		}
	}
	return k
}

// runPastFailures runs lines one by one, each as if it were a '-' line of
// a solution, and returns the first failure.
func runPastFailures(ctx context.Context, sh *Shell, lines []string) error {
	var first error
	for _, line := range lines {
		err := sh.runLines(ctx, []string{strings.TrimPrefix(line, "-")}, nil)
		if errors.Is(err, context.Canceled) {
			return err
		}
		if err != nil && first == nil && !strings.HasPrefix(line, "-") {
			first = err
		}
	}
	return first
}

func indentLines(s, prefix string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString(prefix + l + "\n")
	}
	return b.String()
}

// rootlessGiven says whether st's check is only that the box has a user
// namespace of its own: rootless, `new` gives every box one, so such a
// check passes on a fresh box without being vacuous.
func rootlessGiven(st *lessons.Step) bool {
	if !primitives.Rootless() || len(st.Checks) == 0 {
		return false
	}
	for _, c := range st.Checks {
		if c.String() != "own-namespace user" {
			return false
		}
	}
	return true
}
