package lessons

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
)

// What makes a lesson fit the course: 5 to 25 minutes in 6 to 12 steps,
// and at least one question to predict.
const (
	MinSteps, MaxSteps     = 6, 12
	MinMinutes, MaxMinutes = 5, 25
)

// Lint reports everything wrong with a lesson that can be seen without
// running it: missing parts, unknown checks, bad arguments, hints for
// findings its checks never report.
func (l *Lesson) Lint() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(l.File+": "+format, args...)) }
	if l.Minutes < MinMinutes || l.Minutes > MaxMinutes {
		add("minutes: %d; a lesson takes %d to %d", l.Minutes, MinMinutes, MaxMinutes)
	}
	// The solutions run in seconds: the estimate without them is the
	// lesson's length to the minute (the kit adds the measured time).
	if p := l.PaceOf(0); l.Minutes < p.Minutes()-1 || l.Minutes > p.Minutes()+1 {
		add("minutes: %d, and a learner takes %s (PaceOf)", l.Minutes, p)
	}
	if n := len(l.Steps); n < MinSteps || n > MaxSteps {
		add("%d steps; a lesson has %d to %d", n, MinSteps, MaxSteps)
	}
	predicts := 0
	declared := map[string]bool{}
	for i := range l.Steps {
		for _, name := range l.Steps[i].Makes() {
			declared[name] = true
		}
	}
	for i := range l.Steps {
		s := &l.Steps[i]
		at := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s:%d: step %q: %s", l.File, s.Line, s.Title, fmt.Sprintf(format, args...)))
		}
		if s.Predict != nil {
			predicts++
		}
		switch {
		case s.Predict != nil && s.Evidence < 0:
			at("a ```predict block, and no solution line marked ? to answer it: mark the command whose output answers the question, where the question is about")
		case s.Predict == nil && s.Evidence >= 0:
			at("a solution line marked ? (%s), and no ```predict block for it to answer", s.Solution[s.Evidence])
		}
		for _, line := range s.Solution {
			if name, ok := newBoxLine(line); ok && !strings.HasPrefix(name, "{") {
				at("solution line %q: name the box {%s}, so that the lesson can speak of the box the learner made in its place", line, name)
			}
		}
		if strings.TrimSpace(s.Text) == "" {
			at("no explanation before the commands")
		}
		if len(s.Try) == 0 {
			at("no ```try block")
		}
		if len(s.Solution) == 0 {
			at("no ```solution block")
		}
		if len(s.Checks) == 0 {
			at("no ```check block")
		}
		for _, call := range s.Checks {
			c, err := LookupCheck(call.Name)
			if err != nil {
				at("%v", err)
				continue
			}
			if err := c.validate(call.Args); err != nil {
				at("%v", err)
			}
		}
		known := s.findings()
		var bad []string
		for f := range s.Hints {
			if f != "" && !known[f] {
				bad = append(bad, f)
			}
		}
		sort.Strings(bad)
		for _, f := range bad {
			at("a hint for finding %q, which its checks never report (they report: %s)", f, strings.Join(sortedKeys(known), ", "))
		}
	}
	texts := l.texts()
	for _, where := range slices.Sorted(maps.Keys(texts)) {
		for _, m := range marks(texts[where]) {
			if !declared[m] {
				add("%s: {%s} names no box the lesson makes: a solution's `new {%s}` makes it", where, m, m)
			}
		}
	}
	if predicts == 0 {
		add("no ```predict block: every lesson asks at least one question to answer before running")
	}
	return errors.Join(errs...)
}
