package repl

import "testing"

// lesson check names steps as a reader counts them, runs joined.
func TestStepListJoinsRunsOfSteps(t *testing.T) {
	for _, tc := range []struct {
		steps []int
		want  string
	}{
		{nil, "none"},
		{[]int{5}, "6"},
		{[]int{0, 1}, "1, 2"},
		{[]int{0, 1, 2, 3, 4, 6, 7}, "1–5, 7, 8"},
	} {
		if got := stepList(tc.steps); got != tc.want {
			t.Errorf("stepList(%v) = %q, want %q", tc.steps, got, tc.want)
		}
	}
}
