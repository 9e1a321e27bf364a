package step

// NotRun is the result of a call in a plan: `explain CMD` shows what a
// step would do, and nothing has run, so the kernel has said nothing yet.
const NotRun = "?"

// Plan records call as one the step would make, without making it.
func (s *Step) Plan(call string) {
	if s != nil {
		s.Calls = append(s.Calls, Call{Syscall: call, Result: NotRun})
	}
}

// Ran turns a plan whose calls then ran (their results filled in) into
// the record: the summary in the past tense (Tell).
func (s *Step) Ran() {
	if s != nil && s.did != "" {
		s.Summary = s.did
	}
}

// Planned reports whether s is a plan: it has calls and none of them ran.
func (s *Step) Planned() bool {
	if s == nil || len(s.Calls) == 0 {
		return false
	}
	for _, c := range s.Calls {
		if c.Result != NotRun {
			return false
		}
	}
	return true
}

// MarkNotRun turns a record built by the real code path against a
// recording stand-in for the kernel (see cgroups.Planning) into a plan:
// whatever the stand-in answered, the kernel has not, and the summary
// says what the step will do (Tell).
func (s *Step) MarkNotRun() {
	if s == nil {
		return
	}
	if s.will != "" {
		s.Summary = s.will
	}
	for i := range s.Calls {
		s.Calls[i].Result = NotRun
	}
}
