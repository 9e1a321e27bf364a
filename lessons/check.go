package lessons

import (
	"fmt"
	"sort"
	"strings"
)

// Check is a named judgement of a State. Lesson files name checks in
// their ```check blocks; a check reads only the State, never what was
// typed, so any way of reaching the state passes.
type Check struct {
	Name    string
	Usage   string // e.g. "own-namespace TYPE…"
	Summary string // what passing means
	MinArgs int
	MaxArgs int // -1: any number
	// Args validates the arguments, if the check takes any.
	Args func(args []string) error
	// Findings are the wrong states the check can report, each with the
	// hint shown when a lesson has none of its own. Every check can also
	// report "no-box" and "box-gone".
	Findings map[string]string
	Run      func(s *State, args []string) Result
}

// Result is one check's verdict.
type Result struct {
	Pass    bool
	Finding string // when failing: which wrong state it saw
	Saw     string // what the check read, in a line
	Box     string // the box the verdict is about, if one
}

// commonFindings can come from any check.
var commonFindings = map[string]string{
	"no-box":   "There is no box of this lesson yet: `new` makes one (the step's commands name it). A box left from before the lesson counts only once `use` makes it current.",
	"box-gone": "The box's processes have exited, and its namespaces with them: `rm` it and build it again.",
}

var registry = map[string]*Check{}

func register(cs ...*Check) {
	for _, c := range cs {
		if _, dup := registry[c.Name]; dup {
			panic("lessons: check " + c.Name + " registered twice")
		}
		for f, h := range commonFindings {
			if _, ok := c.Findings[f]; !ok {
				c.Findings[f] = h
			}
		}
		registry[c.Name] = c
	}
}

// LookupCheck returns the check called name.
func LookupCheck(name string) (*Check, error) {
	c, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("unknown check %q: the checks are %s", name, strings.Join(CheckNames(), ", "))
	}
	return c, nil
}

// CheckNames lists the registered checks, sorted.
func CheckNames() []string {
	var out []string
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// validate checks a call's arguments against its check.
func (c *Check) validate(args []string) error {
	if len(args) < c.MinArgs || (c.MaxArgs >= 0 && len(args) > c.MaxArgs) {
		return fmt.Errorf("check %s: wrong number of arguments: usage: %s", c.Name, c.Usage)
	}
	if c.Args != nil {
		if err := c.Args(args); err != nil {
			return fmt.Errorf("check %s: %w", c.Name, err)
		}
	}
	return nil
}

// Judge runs a step's checks in order: the step passes when all do, and
// otherwise the first failure speaks for it.
func (s *Step) Judge(st *State) Result {
	var saw []string
	var box string
	for _, call := range s.Checks {
		c, err := LookupCheck(call.Name)
		if err != nil {
			return Result{Saw: err.Error()} // Lint reports it; the step's fallback hint applies
		}
		r := c.Run(st, call.Args)
		if !r.Pass {
			return r
		}
		saw = append(saw, r.Saw)
		if box == "" {
			box = r.Box
		}
	}
	return Result{Pass: true, Saw: strings.Join(saw, "; "), Box: box}
}

// Hint is the hint for a failed result: the step's own for the finding,
// else the check's, else the step's fallback.
func (s *Step) Hint(r Result) string {
	if h, ok := s.Hints[r.Finding]; ok {
		return h
	}
	for _, call := range s.Checks {
		if c, err := LookupCheck(call.Name); err == nil {
			if h, ok := c.Findings[r.Finding]; ok {
				return h
			}
		}
	}
	return s.Hints[""]
}

// findings lists every finding the step's checks can report.
func (s *Step) findings() map[string]bool {
	out := map[string]bool{}
	for _, call := range s.Checks {
		if c, err := LookupCheck(call.Name); err == nil {
			for f := range c.Findings {
				out[f] = true
			}
		}
	}
	return out
}

// judgeBoxes passes when one box passes fn. Otherwise it reports what fn
// found in the current box, or in the first box when none is current:
// that is the box the learner is working on.
func judgeBoxes(s *State, fn func(b *BoxState) Result) Result {
	if r := s.noBox(); r != nil {
		return *r
	}
	var first *Result
	for _, b := range s.judged() {
		var r Result
		if b.Err != "" {
			r = Result{Finding: "box-gone", Saw: b.Err}
		} else {
			r = fn(b)
		}
		r.Box = b.Name
		if r.Pass {
			return r
		}
		if first == nil {
			first = &r
		}
	}
	return *first
}

// noBox is the no-box finding when no box may be judged, else nil.
func (s *State) noBox() *Result {
	if len(s.judged()) > 0 {
		return nil
	}
	if len(s.Boxes) == 0 {
		return &Result{Finding: "no-box", Saw: "no boxes in this session"}
	}
	var old []string
	for _, b := range s.Boxes {
		old = append(old, b.Name)
	}
	return &Result{Finding: "no-box", Saw: fmt.Sprintf("no box made since the lesson opened (%s %s from before it)", strings.Join(old, ", "), plural(len(old), "is", "are"))}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// judged returns the boxes a check may judge, the current one first: the
// boxes made since the lesson opened, and the current box. A box left
// from an earlier lesson earns no credit for this one.
func (s *State) judged() []*BoxState {
	var out []*BoxState
	for _, b := range s.ordered() {
		if !b.Before || b.Name == s.Current {
			out = append(out, b)
		}
	}
	return out
}

// ordered returns the boxes, the current one first.
func (s *State) ordered() []*BoxState {
	var out []*BoxState
	for i := range s.Boxes {
		if s.Boxes[i].Name == s.Current {
			out = append([]*BoxState{&s.Boxes[i]}, out...)
		} else {
			out = append(out, &s.Boxes[i])
		}
	}
	return out
}

// live returns the boxes that may be judged and could be read.
func (s *State) live() []*BoxState {
	var out []*BoxState
	for _, b := range s.judged() {
		if b.Err == "" {
			out = append(out, b)
		}
	}
	return out
}

func pass(format string, args ...any) Result {
	return Result{Pass: true, Saw: fmt.Sprintf(format, args...)}
}

func fail(finding, format string, args ...any) Result {
	return Result{Finding: finding, Saw: fmt.Sprintf(format, args...)}
}
