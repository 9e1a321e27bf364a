package repl

import (
	"fmt"
	"strings"

	"stepbox/lessons"
)

// Watch sees every line the shell runs (Execute calls Around): it writes
// the lines typed at the prompt into a recording (--record), and, while a
// lesson is open, checks the lesson's current step after each command
// and congratulates once when it passes.
type Watch struct {
	rec   *Recorder // nil: not recording
	depth int       // Execute calls in progress (`source` nests them)
	demo  bool      // the demo types its commands itself

	course   []*lessons.Lesson
	progress *lessons.Progress
	saveErr  bool            // a failed save was reported already
	lesson   *lessons.Lesson // nil: no lesson open
	step     int
	praised  map[int]bool // steps congratulated since the lesson was opened
	// unanswered is 1 + the step whose prediction's answer waits for
	// `next`; 0 when none does.
	unanswered int
	// rebuild is how many earlier steps `solution --run` replays first:
	// the lesson was resumed in a session without the boxes they made.
	rebuild int
}

// watch returns the shell's Watch, making it on first use.
func (sh *Shell) watch() *Watch {
	if sh.Watch == nil {
		sh.Watch = &Watch{}
	}
	return sh.Watch
}

// Around is called first thing in Execute, as
// `defer sh.Watch.Around(sh, line)()`: it records a line typed at the
// prompt, and the function it returns checks the lesson's step once the
// line has run. A nil Watch does nothing.
func (w *Watch) Around(sh *Shell, line string) func() {
	if w == nil {
		return func() {}
	}
	if w.rec != nil && w.depth == 0 && sh.Terminal != nil && !w.demo {
		fmt.Fprintln(w.rec, sh.Theme.Cmd.Render(sh.echoPrompt()+strings.TrimSpace(line)))
	}
	w.depth++
	return func() {
		w.depth--
		if w.depth == 0 {
			w.afterStep(sh, line)
		}
	}
}

// quietCommands change nothing a check could see.
var quietCommands = map[string]bool{
	"lesson": true, "next": true, "hint": true, "check": true,
	"help": true, "history": true, "explain": true, "clear": true, "save": true, "exit": true,
}

// afterStep congratulates, once, when the open lesson's step passes.
func (w *Watch) afterStep(sh *Shell, line string) {
	if w.lesson == nil || sh.Exited() || w.praised[w.step] || w.demo {
		return
	}
	if f := strings.Fields(line); len(f) == 0 || quietCommands[f[0]] || strings.HasPrefix(f[0], "#") {
		return
	}
	st := &w.lesson.Steps[w.step]
	if r := st.Judge(lessons.Observe(sh.Session, sh.current)); r.Pass {
		w.congratulate(sh, r)
	}
}

// loadCourse loads the lessons and the learner's progress on first use.
func (w *Watch) loadCourse(sh *Shell) {
	if w.course != nil {
		return
	}
	w.course = lessons.All()
	p, err := lessons.LoadProgress()
	if err != nil {
		fmt.Fprintln(sh.Err, sh.Theme.Warn.Render("progress:")+" "+err.Error())
		w.saveErr = p.Path() == "" // said already: there is nowhere to save
	}
	w.progress = p
}

func (w *Watch) save(sh *Shell) {
	if err := w.progress.Save(); err != nil && !w.saveErr {
		w.saveErr = true
		fmt.Fprintln(sh.Err, sh.Theme.Warn.Render("progress is not being saved:")+" "+err.Error())
	}
}

// open makes lesson l current, at the step the learner's progress holds.
func (w *Watch) open(sh *Shell, l *lessons.Lesson) {
	w.lesson, w.praised, w.unanswered = l, map[int]bool{}, 0
	lp := w.progress.Lesson(l.ID)
	w.step = min(max(lp.Step, 0), len(l.Steps)-1)
	w.progress.Current = l.ID
	w.save(sh)
	th := sh.Theme
	sh.say("%s", th.Title.Render(fmt.Sprintf("Lesson %d · %s", l.Number, l.Title))+th.Dim.Render(fmt.Sprintf(" · about %d minutes · %d steps", l.Minutes, len(l.Steps))))
	if w.step == 0 {
		sh.say("\n%s", renderMarkdown(l.Intro, sh.Width-2, th, ""))
	} else {
		sh.say("%s", th.Dim.Render(fmt.Sprintf("Welcome back: %d of %d steps done; resuming at step %d. `lesson reset` starts it over.", len(lp.Done), len(l.Steps), w.step+1)))
		w.rebuild = 0
		if sh.Session != nil && len(sh.Session.Boxes()) == 0 {
			// Boxes end with their session; the steps before this one
			// built on them.
			w.rebuild = w.step
			sh.say("%s", th.Dim.Render(fmt.Sprintf("Boxes end with the session that made them, so the ones %s built are gone: `solution --run` rebuilds them first, replaying the solutions up to here.", stepsUpTo(w.step))))
		}
	}
	w.showStep(sh)
}

// stepsUpTo names steps 1 to n: "step 1", "steps 1–3".
func stepsUpTo(n int) string {
	if n == 1 {
		return "step 1"
	}
	return fmt.Sprintf("steps 1–%d", n)
}

// showStep prints the current step: its text, the commands to try, what
// to look for, and the question to predict.
func (w *Watch) showStep(sh *Shell) {
	th := sh.Theme
	l, st := w.lesson, &w.lesson.Steps[w.step]
	sh.say("\n%s %s", th.Title.Render(fmt.Sprintf("Step %d of %d ·", w.step+1, len(l.Steps))), th.Title.Render(st.Title))
	sh.say("%s", renderMarkdown(st.Text, sh.Width-2, th, "  "))
	if why := st.Unmet(); why != "" {
		sh.say("\n%s", renderMarkdown(why, sh.Width-2, th, "  "))
		return
	}
	sh.say("\n  %s", th.Dim.Render("try:"))
	for _, c := range st.Try {
		sh.say("    %s", th.Cmd.Render(c))
	}
	if st.After != "" {
		sh.say("\n%s", renderMarkdown(st.After, sh.Width-2, th, "  "))
	}
	if st.Predict != nil {
		sh.say("\n%s", renderMarkdown("**Predict, then run:** "+st.Predict.Question, sh.Width-2, th, "  "))
	}
	sh.say("\n  %s", th.Dim.Render("stepbox checks your boxes after every command; `hint` if you are stuck, `solution` to see the steps."))
}

// answer prints the answer to the open step's prediction, once.
func (w *Watch) answer(sh *Shell) {
	w.unanswered = 0
	if st := &w.lesson.Steps[w.step]; st.Predict != nil {
		sh.say("%s", renderMarkdown("**Your prediction?** "+st.Predict.Answer, sh.Width-2, sh.Theme, "  "))
	}
}

// congratulate records a passed step and says so, once.
func (w *Watch) congratulate(sh *Shell, r lessons.Result) {
	th := sh.Theme
	l, st := w.lesson, &w.lesson.Steps[w.step]
	w.praised[w.step] = true
	lp := w.progress.Lesson(l.ID)
	lp.MarkDone(w.step)
	w.save(sh)
	sh.say("\n%s %s", th.Good.Render(fmt.Sprintf("✓ Step %d of %d done:", w.step+1, len(l.Steps))), r.Saw)
	if st.Predict != nil {
		// The check often passes on the step's first command, before the
		// one the prediction is about: the answer waits for `next` (or,
		// on a lesson's last step, `check`).
		w.unanswered = w.step + 1
		then := "`next`"
		if w.step+1 == len(l.Steps) {
			then = "`check`"
		}
		sh.say("  %s", th.Dim.Render("Run the step's other commands to test your prediction; "+then+" gives the answer."))
	}
	if w.step+1 < len(l.Steps) {
		sh.say("  %s", th.Dim.Render(fmt.Sprintf("`next` for step %d: %s", w.step+2, l.Steps[w.step+1].Title)))
		return
	}
	if len(lp.Done) == len(l.Steps) {
		sh.say("%s", th.Good.Render(fmt.Sprintf("Lesson %d is complete: all %d steps passed.", l.Number, len(l.Steps))))
	} else {
		sh.say("%s", th.Dim.Render(fmt.Sprintf("That was the last step; %d of %d are done (`lesson list`).", len(lp.Done), len(l.Steps))))
	}
	if l.Number < len(w.course) {
		sh.say("  %s", th.Dim.Render(fmt.Sprintf("`reset` clears your boxes; `lesson %d` goes on: %s", l.Number+1, w.course[l.Number].Title)))
	}
}
