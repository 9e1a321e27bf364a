package repl

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"stepbox/lessons"
	"stepbox/primitives"
)

// hint prints the open step's hint for a failed result, and what the
// check saw.
func (w *Watch) hint(sh *Shell, r lessons.Result) {
	if missing := w.unknownBoxes(sh); missing != "" {
		sh.say("%s", renderMarkdown(missing, sh.Width-2, sh.Theme, ""))
	}
	hint := w.fill(w.lesson.Hint(w.step, r))
	if why := refusedHere(hint, sh.Current()); why != "" {
		hint = why
	} else if use := w.useFirst(sh); use != "" {
		hint = use + " " + hint
	}
	sh.say("%s", renderMarkdown("**Hint:** "+hint, sh.Width-2, sh.Theme, ""))
	sh.say("%s", verdict(sh.Theme.Dim, "stepbox saw:", r.Saw, sh.Width-2, sh.Theme, "  "))
}

// cannotBuild says where step st cannot be built ("rootless here", "on
// this kernel"), or "" when it can.
func cannotBuild(st *lessons.Step) string {
	switch {
	case st.Unmet() == "":
		return ""
	case primitives.Rootless() && (st.RefusedRootless() != nil || st.Needs != nil && st.Needs.Root):
		return "rootless here"
	}
	return "on this kernel"
}

// refused answers `check` and `hint` on a step that cannot be built
// where stepbox runs: why, what still shows its idea, and that `next`
// leaves it as refused, not failed.
func (w *Watch) refused(sh *Shell) {
	st := &w.lesson.Steps[w.step]
	why := st.Unmet()
	if lead, rest, ok := strings.Cut(strings.TrimPrefix(why, "**"), "**"); ok && strings.HasPrefix(why, "**") && !strings.Contains(lead, "`") {
		why = strings.TrimSpace(rest) // the lead says what the verdict's head says
	}
	// The why is Markdown from the lesson's file, broken where its source
	// lines break: the verdict folds it to the terminal as one paragraph.
	why = strings.Join(strings.Fields(why), " ")
	sh.say("%s", verdict(sh.Theme.Warn, fmt.Sprintf("step %d cannot be built %s:", w.step+1, cannotBuild(st)), w.fill(why), sh.Width-2, sh.Theme, ""))
	if shown := st.Shown(); len(shown) > 0 {
		sh.say("%s", renderMarkdown("What still shows it here: `"+strings.Join(w.names.FillAll(shown), "`, `")+"`.", sh.Width-2, sh.Theme, "  "))
	}
	sh.say("  %s", sh.Theme.Dim.Render("`next` goes on, and marks this step refused, not failed."))
}

// stuck follows a `solution --run` that failed: the raw error says what
// the kernel or stepbox refused, the step's hint for the state the boxes
// are in says what to do about it (a box that unshared its cgroup
// namespace too early: make a new box). The learner's Ctrl-C is no
// failure to follow.
func (w *Watch) stuck(sh *Shell, err error) {
	if err == nil || errors.Is(err, context.Canceled) || interruptedBy(err) || sh.Exited() || w.lesson == nil {
		return
	}
	if cannotBuild(&w.lesson.Steps[w.step]) != "" {
		// Its hint would send the learner to the very command refused.
		sh.say("")
		w.refused(sh)
		return
	}
	r := w.lesson.Steps[w.step].Judge(w.observe(sh))
	if r.Pass {
		return
	}
	sh.say("\n%s", sh.Theme.Warn.Render("The solution cannot go on from the state your boxes are in."))
	w.hint(sh, r)
}

// toRebuild is how many earlier steps `solution --run` replays before
// the open step: all of them when the session has no box and the step
// works on a box an earlier step makes (the lesson was resumed in a new
// session, or `next` skipped the step that makes it); else 0.
func (w *Watch) toRebuild(sh *Shell) int {
	if w.step == 0 || sh.Session == nil || len(sh.Session.Boxes()) > 0 {
		return 0
	}
	if w.rebuild > 0 {
		return w.rebuild
	}
	if at := w.lesson.MadeBy(w.lesson.BoxOf(w.step)); at >= 0 && at < w.step {
		return w.step
	}
	return 0
}

// unknownBoxes settles, before the open step is shown, the boxes it
// speaks of that an earlier step makes and that the learner has no box
// for (they went past that step with `next`, or resumed in a new
// session). The current box, if no other of the lesson's names is
// bound to it, becomes the learner's box for the first such name; for
// the others it returns a line saying plainly which box to make.
func (w *Watch) unknownBoxes(sh *Shell) string {
	bound := map[string]bool{}
	for _, box := range w.names {
		bound[box] = true
	}
	var missing []string
	for _, name := range w.lesson.Named(w.step) {
		at := w.lesson.MadeBy(name)
		if at < 0 || at >= w.step || w.hasBox(sh, name) {
			continue
		}
		if cur := sh.Current(); cur != nil && !bound[cur.Name] {
			w.names[name] = cur.Name
			bound[cur.Name] = true
			continue
		}
		missing = append(missing, fmt.Sprintf("box %s (step %d makes it: `new %s`)", name, at+1, name))
	}
	if len(missing) == 0 {
		return ""
	}
	return "You have no " + strings.Join(missing, ", nor ") + ". Make it and bring it as far as the steps before this one do, or `solution --run` in a session with no boxes rebuilds them."
}

// hasBox reports whether the learner has a live box for the lesson's
// name: the one bound to it, or one spelled the same.
func (w *Watch) hasBox(sh *Shell, name string) bool {
	if sh.Session == nil {
		return false
	}
	if got, ok := w.names[name]; ok {
		name = got
	}
	b, err := sh.Session.Box(name)
	return err == nil && b != nil
}

// useFirst says, when the open step's solution starts with `use {X}` and
// the learner has box X but another box is current, that the step is
// about X: the step's hint and what the check saw speak of the current
// box ("box db has no overlay"), where the learner would otherwise go on
// working. "" otherwise.
func (w *Watch) useFirst(sh *Shell) string {
	sol := w.lesson.Steps[w.step].Solution
	if len(sol) == 0 {
		return ""
	}
	f := strings.Fields(w.fill(sol[0]))
	cur := sh.Current()
	if len(f) != 2 || f[0] != "use" || cur == nil || cur.Name == f[1] || sh.Session == nil {
		return ""
	}
	if b, err := sh.Session.Box(f[1]); err != nil || b == nil {
		return ""
	}
	return fmt.Sprintf("This step is about box %s, and box %s is current: `use %s` first.", f[1], cur.Name, f[1])
}

// quoted are the commands a hint quotes: `mount proc`.
var quoted = regexp.MustCompile("`([^`]+)`")

// refusedHere says, rootless, when a command the hint sends the learner
// to would be refused on box b (`mount proc` in a box whose PID
// namespace came after pivot_root; `cgroup new` without delegation): the
// refusal's why and what to do instead, in place of the hint. "" when
// every command it quotes can run.
func refusedHere(hint string, b *primitives.Box) string {
	if !primitives.Rootless() {
		return ""
	}
	for _, m := range quoted.FindAllStringSubmatch(hint, -1) {
		f := strings.Fields(m[1])
		for n := min(len(f), 3); n > 0; n-- {
			var r *primitives.RootlessRefusal
			if errors.As(primitives.RefuseRootless(strings.Join(f[:n], " "), b), &r) {
				return fmt.Sprintf("`%s` would be refused rootless here: %s. Instead, %s.", m[1], r.Why, r.Do)
			}
		}
	}
	return ""
}
