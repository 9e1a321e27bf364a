package repl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"stepbox/lessons"
	"stepbox/primitives"
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
	sayRootless()
	// SIGTERM too (a CI's timeout): the session tears down what it made.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := 0
	for _, l := range course {
		var log bytes.Buffer
		var out io.Writer = &log
		if verbose {
			out = os.Stdout
		}
		problems, running, refused := checkLesson(ctx, l, dirs, out)
		if len(problems) == 0 && refused != "" {
			fmt.Printf("ok    lesson %d · %s: refused rootless at %s\n", l.Number, l.Title, refused)
			continue
		}
		if len(problems) == 0 {
			fmt.Printf("ok    lesson %d · %s: %d steps, every check fails before its solution and passes after\n", l.Number, l.Title, len(l.Steps))
			fmt.Printf("      %s (header: %d min)\n", l.PaceOf(running), l.Minutes)
			continue
		}
		code = 1
		fmt.Printf("FAIL  lesson %d · %s (%s)\n", l.Number, l.Title, l.File)
		for _, p := range problems {
			fmt.Printf("      %s\n", p)
		}
		if !verbose && log.Len() > 0 {
			fmt.Print(indentLines(log.String(), "      | "))
		}
	}
	return code
}

// kitLessons picks the lessons to check: all, numbers of the course, or
// lesson files (a lesson being written need not be built in yet).
func kitLessons(course []*lessons.Lesson, pick []string) ([]*lessons.Lesson, error) {
	if len(pick) == 0 {
		return course, nil
	}
	var out []*lessons.Lesson
	for _, p := range pick {
		if strings.HasSuffix(p, ".md") {
			src, err := os.ReadFile(p)
			if err != nil {
				return nil, err
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

// checkLesson runs l against the kernel in a fresh session and returns
// what is wrong with it, and how long its solutions ran; the session's
// output goes to log. Rootless, a solution refused at a step that cannot
// work rootless (primitives.RefuseRootless) ends the lesson there: what
// refused it comes back in refused, and is not a problem of the lesson.
func checkLesson(ctx context.Context, l *lessons.Lesson, dirs primitives.Dirs, log io.Writer) (problems []string, running time.Duration, refused string) {
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if err := l.Lint(); err != nil {
		for _, e := range strings.Split(err.Error(), "\n") {
			add("%s", e)
		}
		return problems, running, refused
	}
	s, err := primitives.OpenSession(dirs)
	if err != nil {
		add("open a session: %v", err)
		return problems, running, refused
	}
	sh := NewShell(s, log, log, viz.NewTheme("plain"), 100)
	defer func() {
		if err := s.Close(); err != nil {
			add("teardown: %v", err)
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
				return problems, running, refused
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
		return problems, running, refused
	}
	for i := range l.Steps {
		st := &l.Steps[i]
		fmt.Fprintf(log, "# %s\n", name(i))
		// Only a step that names the kernel it needs is let off, and
		// only on an older kernel: it is explained there, not run.
		// A step that says it needs root is run rootless all the same: the
		// kit holds the lesson to its word (it must fail), and the lesson
		// ends there, refused, since later steps build on it.
		rootOnly := st.Needs != nil && st.Needs.Root && primitives.Rootless()
		if why := st.Unmet(); why != "" && !rootOnly {
			fmt.Fprintf(log, "# skipped: %s\n", why)
			continue
		}
		// A root-only step may find its check met already rootless (lesson
		// 2's user step: every rootless box has its user namespace from
		// `new`); what it teaches still cannot be built, which its
		// solution's failure shows below.
		if r := st.Judge(observe()); r.Pass && !rootOnly {
			add("%s: its check passes before its solution runs (%s)", name(i), r.Saw)
		}
		start := time.Now()
		err := sh.runLines(ctx, lessons.Names(nil).FillAll(st.Solution), nil)
		running += time.Since(start)
		if err != nil && rootOnly && !errors.Is(err, context.Canceled) {
			return problems, running, fmt.Sprintf("%s: %s (it failed: %v)", name(i), strings.ReplaceAll(st.Unmet(), "**", ""), err)
		}
		if err == nil && rootOnly {
			add("%s: its ```needs root block says it cannot work rootless, yet its solution ran rootless: drop the block", name(i))
		}
		if err != nil {
			if errors.Is(err, context.Canceled) {
				add("interrupted")
				return problems, running, refused
			}
			if r := (*primitives.RootlessRefusal)(nil); errors.As(err, &r) {
				return problems, running, fmt.Sprintf("%s: %v", name(i), r)
			}
			add("%s: its solution failed: %v", name(i), err)
			return problems, running, refused
		}
		if r := st.Judge(observe()); !r.Pass {
			add("%s: its check fails after its solution: %s (finding %s)", name(i), r.Saw, r.Finding)
		}
	}
	return problems, running, refused
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
