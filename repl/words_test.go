package repl

import (
	"regexp"
	"strings"
	"testing"

	"stepbox/primitives/step"
)

// pastTense is the first word of a record's summary: a verb in the past.
var pastTense = regexp.MustCompile(`^(\w+ed|made|ran|set|wrote|put|bound|found|began|escaped:|no escape:)\b`)

// `explain CMD` (a plan: nothing has run) speaks in the future tense;
// `explain` after a step (the record of what ran) in the past.
func TestExplainSpeaksOfAPlanInTheFutureAndOfARecordInThePast(t *testing.T) {
	planEachStep(t, func(line string, plan, rec *step.Step) {
		if verb, _, _ := strings.Cut(line, " "); verb == "caps" || verb == "nnp" || verb == "seccomp" {
			// A settings step changes the box's next commands, and speaks
			// of them: what they would start with, then what they will.
			if !strings.HasPrefix(plan.Summary, "the box's next commands would ") || !strings.HasPrefix(rec.Summary, "the box's next commands will ") {
				t.Errorf("%s: plan %q, record %q: not what the next commands would, then will, start with", line, plan.Summary, rec.Summary)
			}
			return
		}
		if !strings.HasPrefix(plan.Summary, "will ") {
			t.Errorf("explain %s: the plan says %q, not what the step will do", line, plan.Summary)
		}
		if rec != nil && rec.Summary != "" && !pastTense.MatchString(rec.Summary) {
			t.Errorf("%s, then explain: the record says %q, not what the step did", line, rec.Summary)
		}
	})
}
