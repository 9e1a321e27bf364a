package repl

import (
	"fmt"
	"strings"

	"stepbox/lessons"
	"stepbox/primitives"
	"stepbox/viz"
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
	// progressDir keeps the progress when the learner chose a state dir.
	progressDir string
	saveErr     bool            // a failed save was reported already
	lesson      *lessons.Lesson // nil: no lesson open
	step        int
	praised     map[int]bool // steps congratulated since the lesson was opened
	answered    map[int]bool // steps whose prediction has been answered
	// withheld holds, per step, what its check saw when it passed before
	// its prediction was answered: it is shown with the answer.
	withheld map[int]string
	// before holds the IDs of the boxes made before the lesson opened:
	// they earn it no credit unless current.
	before map[string]bool
	// names are the learner's boxes for the lesson's {web}, {db}…
	names lessons.Names
	// ran holds the lines run at the prompt in the open step, as words
	// joined by one space.
	ran map[string]bool
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
// `defer sh.Watch.Around(sh, line)(&err)`: it records a line typed at the
// prompt, and the function it returns, given the line's error, learns the
// name of a box `new` made and checks the lesson's step once the line has
// run. A nil Watch does nothing.
func (w *Watch) Around(sh *Shell, line string) func(err *error) {
	if w == nil {
		return func(*error) {}
	}
	if w.rec != nil && w.depth == 0 && sh.Terminal != nil && !w.demo {
		fmt.Fprintln(w.rec, sh.echoLine(strings.TrimSpace(line)))
	}
	var had map[string]bool // the boxes before a `new`
	if f := strings.Fields(line); len(f) > 0 && f[0] == "new" && w.lesson != nil && sh.Session != nil {
		had = boxIDs(sh)
	}
	w.depth++
	return func(err *error) {
		w.depth--
		if had != nil && *err == nil {
			if b := sh.Current(); b != nil && !had[b.ID] {
				w.bind(sh, b.Name)
			}
		}
		if w.depth == 0 {
			w.afterStep(sh, line, err)
		}
	}
}

// boxIDs are the IDs of the session's boxes.
func boxIDs(sh *Shell) map[string]bool {
	out := map[string]bool{}
	if sh.Session == nil {
		return out
	}
	for _, b := range sh.Session.Boxes() {
		if b != nil {
			out[b.ID] = true
		}
	}
	return out
}

// bind makes box the learner's own for one of the lesson's names: the one
// the open step makes under that very name, else the first the step makes
// that has no live box yet, else any of the lesson's names spelled the
// same with no box yet. From then on the lesson's text names box.
func (w *Watch) bind(sh *Shell, box string) {
	free := func(name string) bool {
		got, ok := w.names[name]
		if !ok {
			return true
		}
		b, err := sh.Session.Box(got)
		return err != nil || b == nil
	}
	makes := w.lesson.Steps[w.step].Makes()
	for _, name := range makes {
		if name == box {
			w.names[name] = box
			return
		}
	}
	for _, name := range makes {
		if free(name) {
			w.names[name] = box
			return
		}
	}
	for i := range w.lesson.Steps {
		for _, name := range w.lesson.Steps[i].Makes() {
			if name == box && free(name) {
				w.names[name] = box
				return
			}
		}
	}
	// A box made in place of one an earlier step makes, which the
	// learner skipped: the earliest such name with no box yet.
	for i := 0; i < w.step; i++ {
		for _, name := range w.lesson.Steps[i].Makes() {
			if free(name) {
				if _, err := sh.Session.Box(name); err != nil {
					w.names[name] = box
					return
				}
			}
		}
	}
}

// fill writes the lesson's {NAME}s as the learner's boxes.
func (w *Watch) fill(md string) string { return w.names.Fill(md) }

// observe reads the boxes for a check, marking those left from before
// the lesson.
func (w *Watch) observe(sh *Shell) *lessons.State {
	return lessons.Observe(sh.Session, sh.current).MadeBefore(w.before)
}

// quietCommands change nothing a check could see.
var quietCommands = map[string]bool{
	"lesson": true, "next": true, "hint": true, "check": true,
	"help": true, "history": true, "explain": true, "clear": true, "save": true, "exit": true,
}

// afterStep answers the step's prediction after the command that shows
// its answer, and congratulates, once, when the open lesson's step passes.
// Whatever it says comes after the line's own output and error, so the
// error is printed here first.
func (w *Watch) afterStep(sh *Shell, line string, err *error) {
	if w.lesson == nil || sh.Exited() || w.demo {
		return
	}
	f := strings.Fields(line)
	if len(f) == 0 || quietCommands[f[0]] || strings.HasPrefix(f[0], "#") {
		return
	}
	report := func() {
		if *err != nil {
			sh.reportError(*err)
			*err = reportedError{*err}
		}
	}
	st := &w.lesson.Steps[w.step]
	if w.isEvidence(st, line) && !w.answered[w.step] {
		report()
		w.answerNow(sh)
	}
	if w.ran == nil {
		w.ran = map[string]bool{}
	}
	w.ran[words(line)] = true
	// A line that failed changed nothing to praise (`new web` refused
	// because a web is left from the last lesson), and a step that cannot
	// be built here passes only on what another step built: neither earns
	// a ✓.
	if w.praised[w.step] || *err != nil || cannotBuild(st) != "" {
		return
	}
	if r := st.Judge(w.observe(sh)); r.Pass {
		report()
		w.congratulate(sh, r)
	}
}

// isEvidence reports whether line is the command that answers the step's
// prediction (its solution's line marked ?), as the learner's boxes name
// it, run at the moment the question is about: after the lines the
// solution runs before it, and before any line it runs after it
// (`hostname web1` after the `exec hostname` that shows the host's name).
func (w *Watch) isEvidence(st *lessons.Step, line string) bool {
	if !st.Asks() {
		return false
	}
	lines, evidence := w.names.FillAll(st.Solution), st.Evidence
	want := words(strings.TrimPrefix(lines[evidence], "-"))
	if primitives.Rootless() && st.TryRootless != nil {
		// The step shows other commands rootless: the moment is the one
		// they reach.
		// they reach: the same occurrence of the command as in the
		// solution (the second `exec cat /proc/self/cgroup`, after
		// `unshare cgroup`), or its last.
		nth := 0
		for _, l := range lines[:evidence+1] {
			if words(strings.TrimPrefix(l, "-")) == want {
				nth++
			}
		}
		lines, evidence = w.names.FillAll(st.Shown()), -1
		for i, l := range lines {
			if words(strings.TrimPrefix(l, "-")) == want && nth > 0 {
				evidence, nth = i, nth-1
			}
		}
	}
	if words(line) != want || evidence < 0 {
		return false
	}
	for _, later := range lines[evidence+1:] {
		if l := words(strings.TrimPrefix(later, "-")); l != want && w.ran[l] {
			return false
		}
	}
	// Nor before the steps the solution takes ahead of it: `exec sh -c
	// 'echo $$'` before `unshare pid` shows another moment than the answer
	// speaks of. Commands that look (`exec`, `!`), `new` and `use` (a
	// learner's box may have another name, or be current already) and `-`
	// lines (which may fail) do not count; a learner who got there another
	// way gets the answer from `next`.
	for _, earlier := range lines[:evidence] {
		if f := strings.Fields(earlier); len(f) == 0 || strings.HasPrefix(f[0], "-") || strings.HasPrefix(f[0], "!") ||
			f[0] == "exec" || f[0] == "new" || f[0] == "use" {
			continue
		}
		if !w.ran[words(earlier)] {
			return false
		}
	}
	return true
}

// words is line as its words joined by one space.
func words(line string) string { return strings.Join(strings.Fields(line), " ") }

// loadCourse loads the lessons and the learner's progress on first use.
func (w *Watch) loadCourse(sh *Shell) {
	if w.course != nil {
		return
	}
	w.course = lessons.All()
	p, err := lessons.LoadProgressIn(w.progressDir)
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
	w.lesson, w.praised, w.answered, w.withheld, w.names, w.ran = l, map[int]bool{}, map[int]bool{}, map[int]string{}, lessons.Names{}, nil
	w.before = boxIDs(sh)
	lp := w.progress.Lesson(l.ID)
	w.step = min(max(lp.Step, 0), len(l.Steps)-1)
	w.progress.Current = l.ID
	w.save(sh)
	th := sh.Theme
	sh.say("%s", th.Title.Render(fmt.Sprintf("Lesson %d · %s", l.Number, l.Title))+th.Dim.Render(fmt.Sprintf(" · about %d minutes · %d steps", l.Minutes, len(l.Steps))))
	none := true // no step of the lesson can be built where stepbox runs
	for i := range l.Steps {
		none = none && cannotBuild(&l.Steps[i]) != ""
	}
	if none {
		next := "it is the course's last"
		if l.Number < len(w.course) {
			next = fmt.Sprintf("`lesson %d` goes on", l.Number+1)
		}
		sh.say("%s", viz.Wrap(th.Warn.Render(fmt.Sprintf("No step of lesson %d can be built %s:", l.Number, cannotBuild(&l.Steps[0])))+fmt.Sprintf(" each says why and what shows its idea; `next` marks it refused, and %s.", next), sh.Width-2, ""))
	}
	if w.step == 0 {
		sh.say("\n%s", renderMarkdown(w.fill(l.Intro), sh.Width-2, th, ""))
	} else {
		sh.say("%s", th.Dim.Render(fmt.Sprintf("Welcome back: %d of %d steps done; resuming at step %d. `lesson reset` starts it over.", len(lp.Done), len(l.Steps), w.step+1)))
		w.rebuild = 0
		if sh.Session != nil && len(sh.Session.Boxes()) == 0 && !none {
			// Boxes end with their session; the steps before this one
			// built on them.
			w.rebuild = w.step
			sh.say("%s", th.Dim.Render(fmt.Sprintf("Boxes end with the session that made them, so the ones %s built are gone: `solution --run` rebuilds them, replaying those steps' solutions, and leaves step %d to you.", stepsUpTo(w.step), w.step+1)))
		}
	}
	if old := w.leftOver(sh); old != "" {
		sh.say("\n%s", renderMarkdown(fmt.Sprintf("%s made before this lesson: its checks judge the boxes you make now, and the current box. `reset` clears the old ones.", old), sh.Width-2, th, ""))
	}
	w.showStep(sh)
}

// leftOver names the boxes made before the lesson opened: "Box old was",
// "Boxes a and b were"; "" when there are none.
func (w *Watch) leftOver(sh *Shell) string {
	if sh.Session == nil {
		return ""
	}
	var names []string
	for _, b := range sh.Session.Boxes() {
		if b != nil && w.before[b.ID] {
			names = append(names, b.Name)
		}
	}
	switch len(names) {
	case 0:
		return ""
	case 1:
		return "Box " + names[0] + " was"
	}
	return "Boxes " + strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1] + " were"
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
	missing := w.unknownBoxes(sh)
	sh.say("\n%s %s", th.Title.Render(fmt.Sprintf("Step %d of %d ·", w.step+1, len(l.Steps))), th.Title.Render(st.Title))
	sh.say("%s", renderMarkdown(w.fill(st.Text), sh.Width-2, th, "  "))
	if missing != "" {
		sh.say("\n%s", renderMarkdown(missing, sh.Width-2, th, "  "))
	}
	why := st.Unmet()
	if why != "" {
		sh.say("\n%s", renderMarkdown(w.fill(why), sh.Width-2, th, "  "))
	}
	if len(st.Shown()) == 0 {
		return
	}
	sh.say("\n  %s", th.Dim.Render("try:"))
	for _, c := range st.Shown() {
		sh.command("    ", w.fill(c))
	}
	if st.After != "" && why == "" {
		sh.say("\n%s", renderMarkdown(w.fill(st.After), sh.Width-2, th, "  "))
	}
	if st.Asks() {
		sh.say("\n%s", renderMarkdown("**Predict, then run:** "+w.fill(st.Predict.Question), sh.Width-2, th, "  "))
	}
	sh.say("\n  %s", th.Dim.Render("stepbox checks your boxes after every command; `hint` if you are stuck, `solution` to see the steps."))
}

// answerNow prints the answer to the open step's prediction, once, right
// after the command that shows it ran at the moment the question is about.
func (w *Watch) answerNow(sh *Shell) { w.tell(sh, "") }

// answer prints the answer to the open step's prediction, once, at any
// other time (`next`, `check`): it says which moment it is about, so
// that it does not seem to contradict what the learner's own run of the
// command showed at another moment.
func (w *Watch) answer(sh *Shell) {
	if st := &w.lesson.Steps[w.step]; st.Asks() {
		w.tell(sh, "("+w.moment(st)+") ")
	}
}

func (w *Watch) tell(sh *Shell, lead string) {
	st := &w.lesson.Steps[w.step]
	if !st.Asks() || w.answered[w.step] {
		return
	}
	w.answered[w.step] = true
	sh.say("\n%s", renderMarkdown("**Your prediction?** "+lead+w.fill(st.Answer()), sh.Width-2, sh.Theme, "  "))
	if w.withheld[w.step] != "" {
		// What the check saw when the step passed may be stale by now
		// (the learner reset and built again): say what it sees now.
		if r := st.Judge(w.observe(sh)); r.Pass {
			sh.say("%s", verdict(sh.Theme.Dim, "the check saw:", r.Saw, sh.Width-2, sh.Theme, "  "))
		}
	}
}

// moment names the moment a step's prediction is about: "About `exec
// hostname` right after `unshare uts`, before `hostname web1`."
func (w *Watch) moment(st *lessons.Step) string {
	lines := w.names.FillAll(st.Solution)
	line := func(i int) string { return "`" + strings.TrimSpace(strings.TrimPrefix(lines[i], "-")) + "`" }
	s := "About " + line(st.Evidence)
	if st.Evidence > 0 {
		s += " right after " + line(st.Evidence-1)
	}
	if st.Evidence+1 < len(lines) {
		s += ", before " + line(st.Evidence+1)
	}
	return s + "."
}

// congratulate records a passed step and says so, once.
func (w *Watch) congratulate(sh *Shell, r lessons.Result) {
	th := sh.Theme
	l, st := w.lesson, &w.lesson.Steps[w.step]
	w.praised[w.step] = true
	lp := w.progress.Lesson(l.ID)
	lp.MarkDone(w.step)
	w.save(sh)
	if st.Asks() && !w.answered[w.step] {
		// What the check saw may be the prediction's answer: it comes
		// with the answer.
		w.withheld[w.step] = r.Saw
		sh.say("\n%s", th.Good.Render(fmt.Sprintf("✓ Step %d of %d done.", w.step+1, len(l.Steps))))
	} else {
		sh.say("\n%s", verdict(th.Good, fmt.Sprintf("✓ Step %d of %d done:", w.step+1, len(l.Steps)), r.Saw, sh.Width-2, th, ""))
	}
	if st.Asks() && !w.answered[w.step] {
		// The check often passes on the step's first command, before the
		// one the prediction is about: the answer comes after that one,
		// or with `next` (or, on a lesson's last step, `check`).
		then := "`next`"
		if w.step+1 == len(l.Steps) {
			then = "`check`"
		}
		sh.say("%s", renderMarkdown(fmt.Sprintf("Run the step's other commands to test your prediction (`%s` shows the answer); %s gives it too.", w.fill(strings.TrimPrefix(st.Solution[max(st.Evidence, 0)], "-")), then), sh.Width-2, th, "  "))
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
	if l.Recap != "" {
		sh.say("\n%s", renderMarkdown("**Recap.** "+w.fill(l.Recap), sh.Width-2, th, "  "))
	}
	if l.Number < len(w.course) {
		sh.say("  %s", th.Dim.Render(fmt.Sprintf("`reset` clears your boxes; `lesson %d` goes on: %s", l.Number+1, w.course[l.Number].Title)))
	}
}
