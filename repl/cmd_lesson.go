package repl

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/charmbracelet/x/ansi"
	"stepbox/lessons"
	"stepbox/primitives"
	"stepbox/viz"
)

var errNoLesson = errors.New("no lesson is open: `lesson list` shows them, `lesson N` opens one")

func init() {
	register(
		&Command{
			Name: "lesson", Group: "lessons", Usage: "lesson [N|list|reset]", MaxArgs: 1,
			Summary: "open lesson N (where you left it), or show the open lesson's step",
			Kernel:  "nothing: each step's check reads your boxes' namespaces, mounts and cgroups from the kernel",
			Example: "lesson 1",
			Complete: func(sh *Shell, args []string) []Suggestion {
				if len(args) > 1 {
					return nil
				}
				var out []Suggestion
				for _, l := range lessons.All() {
					out = append(out, Suggestion{Text: strconv.Itoa(l.Number), Description: l.Title})
				}
				return out
			},
			Run: runLesson,
			Sub: []*Command{
				{
					Name: "list", Usage: "lesson list", Summary: "the lessons, and how far you are in each",
					Run: func(sh *Shell, c *Call) error {
						w := sh.watch()
						w.loadCourse(sh)
						fmt.Fprint(sh.Out, lessonList(w.course, w.progress, sh.Theme, sh.Width))
						return nil
					},
				},
				{
					Name: "reset", Usage: "lesson reset [N|all]", MaxArgs: 1,
					Summary: "forget your progress in the open lesson, lesson N, or all of them",
					Run: func(sh *Shell, c *Call) error {
						w := sh.watch()
						w.loadCourse(sh)
						msg, err := resetProgress(w.course, w.progress, w.lesson, c.Args)
						if err != nil {
							return err
						}
						if w.lesson != nil && w.progress.Lessons[w.lesson.ID] == nil {
							w.step, w.praised, w.answered, w.withheld, w.ran = 0, map[int]bool{}, map[int]bool{}, map[int]string{}, nil
						}
						w.save(sh)
						sh.ok("%s", msg)
						return nil
					},
				},
			},
		},
		&Command{
			Name: "next", Group: "lessons", Usage: "next", Summary: "go on to the open lesson's next step",
			Run: func(sh *Shell, c *Call) error {
				w := sh.watch()
				if w.lesson == nil {
					return errNoLesson
				}
				if w.praised[w.step] {
					w.answer(sh)
				}
				if w.step+1 >= len(w.lesson.Steps) {
					if lp := w.progress.Lesson(w.lesson.ID); !lp.IsDone(w.step) {
						if where := cannotBuild(&w.lesson.Steps[w.step]); where != "" {
							lp.MarkRefused(w.step) // the last step, left as the others are
							w.save(sh)
							sh.say("%s", sh.Theme.Warn.Render(fmt.Sprintf("step %d cannot be built %s: marked refused, not failed", w.step+1, where)))
						}
					}
					if w.lesson.Number < len(w.course) {
						return fmt.Errorf("step %d is the last of lesson %d: `lesson %d` opens the next lesson", w.step+1, w.lesson.Number, w.lesson.Number+1)
					}
					return fmt.Errorf("step %d is the last of the course's last lesson", w.step+1)
				}
				lp := w.progress.Lesson(w.lesson.ID)
				if !lp.IsDone(w.step) {
					// Checked once more: a learner who read ahead may have
					// typed the step's command before the step was shown.
					// A step that cannot be built here is refused even
					// when its check passes on what other steps built.
					where := cannotBuild(&w.lesson.Steps[w.step])
					if r := w.lesson.Steps[w.step].Judge(w.observe(sh)); r.Pass && where == "" {
						w.praised[w.step] = true
						lp.MarkDone(w.step)
						sh.ok("step %d passes its check: done (%s)", w.step+1, r.Saw)
						w.answer(sh)
					} else if where != "" {
						lp.MarkRefused(w.step)
						sh.say("%s", sh.Theme.Warn.Render(fmt.Sprintf("step %d cannot be built %s: marked refused, not failed", w.step+1, where)))
					} else {
						lp.MarkSkipped(w.step)
						sh.say("%s", sh.Theme.Warn.Render(fmt.Sprintf("step %d has not passed its check yet: skipped, not done (later steps may need what it makes)", w.step+1)))
					}
				}
				w.step, w.ran = w.step+1, nil
				lp.Step = w.step
				w.save(sh)
				w.showStep(sh)
				return nil
			},
		},
		&Command{
			Name: "check", Group: "lessons", Usage: "check", Summary: "check the open lesson's step against your boxes now",
			Kernel: "reads the boxes' live state (namespaces, mounts, layers, cgroups, processes) and judges it",
			Run: func(sh *Shell, c *Call) error {
				w := sh.watch()
				if w.lesson == nil {
					return errNoLesson
				}
				r := w.lesson.Steps[w.step].Judge(w.observe(sh))
				switch {
				case cannotBuild(&w.lesson.Steps[w.step]) != "" && !w.praised[w.step]:
					w.refused(sh)
				case r.Pass && !w.praised[w.step]:
					w.congratulate(sh, r)
				case r.Pass:
					sh.ok("step %d passes: %s", w.step+1, r.Saw)
					w.answer(sh)
				default:
					sh.say("%s", verdict(sh.Theme.Bad, fmt.Sprintf("✗ step %d is not done yet:", w.step+1), r.Saw, sh.Width-2, sh.Theme, ""))
					sh.say("  %s", sh.Theme.Dim.Render("`hint` for a hint"))
				}
				return nil
			},
		},
		&Command{
			Name: "hint", Group: "lessons", Usage: "hint", Summary: "a hint for the open lesson's step, chosen from what its check sees",
			Run: func(sh *Shell, c *Call) error {
				w := sh.watch()
				if w.lesson == nil {
					return errNoLesson
				}
				st := &w.lesson.Steps[w.step]
				if cannotBuild(st) != "" {
					w.refused(sh)
					return nil
				}
				r := st.Judge(w.observe(sh))
				if r.Pass {
					sh.ok("step %d passes already (%s): `next`", w.step+1, r.Saw)
					return nil
				}
				w.hint(sh, r)
				return nil
			},
		},
		&Command{
			Name: "solution", Group: "lessons", Usage: "solution [--run]", Summary: "the commands that solve the open lesson's step; --run runs them",
			Flags: []Flag{{Name: "run", Help: "run them here, one by one, stopping at the first failure"}},
			Run: func(sh *Shell, c *Call) error {
				w := sh.watch()
				if w.lesson == nil {
					return errNoLesson
				}
				st := &w.lesson.Steps[w.step]
				if !c.Has("run") {
					sh.say("%s", sh.Theme.Dim.Render(fmt.Sprintf("solution of step %d (a leading '-' lets a line fail):", w.step+1)))
					for i, l := range w.names.FillAll(st.Solution) {
						note := ""
						if i == st.Evidence && st.Predict != nil {
							note = sh.Theme.Dim.Render("   ← shows the prediction's answer")
						}
						sh.say("  %s%s", sh.Theme.Cmd.Render(glueQuoted(l)), note)
					}
					return nil
				}
				ctx := sh.interrupt // nested lines reset sh.interrupt as they end
				if n := w.toRebuild(sh); n > 0 {
					// The learner's own step stays theirs: its prediction
					// is theirs to test.
					sh.say("%s", sh.Theme.Dim.Render(fmt.Sprintf("rebuilding what %s made; step %d stays yours:", stepsUpTo(n), w.step+1)))
					for i := 0; i < n; i++ {
						if err := sh.runLines(ctx, w.names.FillAll(w.lesson.Steps[i].Solution), nil); err != nil {
							w.stuck(sh, err)
							return err
						}
					}
					w.rebuild = 0
					sh.say("\n%s", renderMarkdown(fmt.Sprintf("Rebuilt. Now step %d: try its commands yourself (`solution --run` again runs them).", w.step+1), sh.Width-2, sh.Theme, "  "))
					return nil
				}
				w.rebuild = 0
				err := runSolution(ctx, sh, st, w.names, nil, func(bool) error { w.answerNow(sh); return nil })
				if where := cannotBuild(st); err == nil && where != "" {
					sh.say("\n  %s", sh.Theme.Dim.Render(fmt.Sprintf("The lines refused %s were passed over, the rest built; `next` marks this step refused, not failed.", where)))
				}
				w.stuck(sh, err)
				return err
			},
		},
	)
}

func runLesson(sh *Shell, c *Call) error {
	w := sh.watch()
	w.loadCourse(sh)
	if len(c.Args) == 0 {
		if w.lesson == nil {
			fmt.Fprint(sh.Out, lessonList(w.course, w.progress, sh.Theme, sh.Width))
			return nil
		}
		w.showStep(sh)
		return nil
	}
	l, err := lessonArg(w.course, c.Args[0])
	if err != nil {
		return err
	}
	w.open(sh, l)
	return nil
}

// lessonArg finds the lesson a command-line argument names.
func lessonArg(course []*lessons.Lesson, arg string) (*lessons.Lesson, error) {
	n, err := strconv.Atoi(arg)
	if err == nil {
		return lessons.Lookup(course, n)
	}
	if arg == "check" {
		return nil, errors.New("`check` on its own checks the open lesson's step; `stepbox lesson check [FILE.md]`, from the host's shell, checks whole lessons (the lesson kit)")
	}
	return nil, fmt.Errorf("%q is not a lesson number: the lessons are 1 to %d (`lesson list`)", arg, len(course))
}

// resetProgress forgets progress as `lesson reset [N|all]` asks.
func resetProgress(course []*lessons.Lesson, p *lessons.Progress, open *lessons.Lesson, args []string) (string, error) {
	switch {
	case len(args) == 1 && args[0] == "all":
		p.Reset("")
		return "progress in every lesson forgotten", nil
	case len(args) == 1:
		l, err := lessonArg(course, args[0])
		if err != nil {
			return "", err
		}
		p.Reset(l.ID)
		return fmt.Sprintf("progress in lesson %d forgotten", l.Number), nil
	case open != nil:
		p.Reset(open.ID)
		return fmt.Sprintf("progress in lesson %d forgotten: `lesson %d` starts it from step 1", open.Number, open.Number), nil
	}
	return "", errors.New("which lesson? `lesson reset N`, or `lesson reset all`")
}

// lessonList is `lesson list`: each lesson with its length and the
// learner's progress.
// Rows wider than width fold their progress at words, under its column.
func lessonList(course []*lessons.Lesson, p *lessons.Progress, th viz.Theme, width int) string {
	var b strings.Builder
	title := 0 // the longest title sets the column
	for _, l := range course {
		title = max(title, len([]rune(l.Title)))
	}
	for _, l := range course {
		lp := p.Lessons[l.ID]
		state := th.Dim.Render("not started")
		switch {
		case lp != nil && len(lp.Done) == len(l.Steps):
			state = th.Good.Render("✓ done")
		case lp != nil && len(lp.Refused) > 0 && len(lp.Done)+len(lp.Refused) == len(l.Steps):
			// Every step that can be built here passed: the rest cannot be.
			state = th.Good.Render(fmt.Sprintf("✓ done (%d cannot be built here)", len(lp.Refused)))
		case lp != nil:
			state = fmt.Sprintf("%d/%d steps, at step %d", len(lp.Done), len(l.Steps), lp.Step+1)
			if n := len(lp.Skipped); n > 0 {
				state += fmt.Sprintf(" (%d skipped)", n)
			}
			if n := len(lp.Refused); n > 0 {
				state += fmt.Sprintf(" (%d cannot be built here)", n)
			}
		}
		mark := "  "
		if p.Current == l.ID {
			mark = th.Title.Render("▸ ")
		}
		row := fmt.Sprintf("%s%d  %-*s  %2d steps  ~%2d min   ", mark, l.Number, title, l.Title, len(l.Steps), l.Minutes)
		if at := ansi.StringWidth(row); at+ansi.StringWidth(state) > width && width-at >= 16 {
			state = strings.ReplaceAll(viz.Wrap(state, width-at, ""), "\n", "\n"+strings.Repeat(" ", at))
		}
		fmt.Fprintf(&b, "%s%s\n", row, state)
	}
	if path := p.Path(); path != "" {
		fmt.Fprintln(&b, th.Dim.Render("progress is kept in "+path))
	}
	return b.String()
}

// runSolution runs a step's solution with the learner's box names, and
// calls answer right after the line that answers its prediction.
// answer is told whether lines follow; an error from it (the lecturer
// quit at a pause) stops the rest.
func runSolution(ctx context.Context, sh *Shell, st *lessons.Step, names lessons.Names, echo func(string), answer func(more bool) error) error {
	lines := names.FillAll(st.Solution)
	for i, l := range lines {
		// Rootless, a line stepbox refuses on any box shows its refusal
		// and the rest goes on: what still builds is there for the next
		// steps (lesson 9's container, without its cgroup).
		if !strings.HasPrefix(l, "-") && primitives.RefuseRootlessLine(l) != nil {
			lines[i] = "-" + l
		}
	}
	if st.Predict == nil || st.Evidence < 0 {
		return sh.runLines(ctx, lines, echo)
	}
	if err := sh.runLines(ctx, lines[:st.Evidence+1], echo); err != nil {
		return err
	}
	if err := answer(st.Evidence+1 < len(lines)); err != nil {
		return err
	}
	return sh.runLines(ctx, lines[st.Evidence+1:], echo)
}

// runLines runs script lines as a script would: each echoed (or shown by
// echo, when given: the demo types it), a line starting with '-' may
// fail, and the first other failure stops them, as does the learner's
// Ctrl-C (stopsScript).
func (sh *Shell) runLines(ctx context.Context, lines []string, echo func(line string)) error {
	for _, line := range lines {
		tolerate := false
		if rest, ok := strings.CutPrefix(line, "-"); ok {
			tolerate, line = true, strings.TrimSpace(rest)
		}
		if echo != nil {
			echo(line)
		} else {
			sh.command(sh.echoPrompt(), line)
		}
		if err := sh.Execute(ctx, line); err != nil {
			// As typed: the kernel's words, the rule and what to do, which
			// a lecture running a solution is there to show.
			sh.reportError(err)
			if stopsScript(err, tolerate) {
				return reportedError{err}
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}
