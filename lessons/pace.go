package lessons

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// A lesson's minutes are a human pace estimate of taking it, not a guess:
// reading its text at ReadWPM words a minute (teaching text, read slower
// than prose), typing each command of its try blocks at TypeCPS characters
// a second, plus ReadOutput to read what each command prints, ThinkTime to
// answer each prediction, and the time its solutions take on the kernel
// (measured by `stepbox lesson check -v`).
const (
	ReadWPM    = 150
	TypeCPS    = 2.5
	ReadOutput = 8 * time.Second
	ThinkTime  = 30 * time.Second
)

// Pace is the estimate, in its parts.
type Pace struct {
	Reading, Typing, Thinking, Running time.Duration
}

// Total is the whole estimate.
func (p Pace) Total() time.Duration { return p.Reading + p.Typing + p.Thinking + p.Running }

// Minutes is the estimate rounded to the nearest minute, at least 1.
func (p Pace) Minutes() int { return max(int((p.Total()+30*time.Second)/time.Minute), 1) }

func (p Pace) String() string {
	r := func(d time.Duration) string { return d.Round(time.Second).String() }
	return fmt.Sprintf("~%d min: reading %s, typing %s, thinking %s, running %s", p.Minutes(), r(p.Reading), r(p.Typing), r(p.Thinking), p.Running.Round(10*time.Millisecond))
}

// PaceOf estimates taking l, given how long its solutions ran.
func (l *Lesson) PaceOf(running time.Duration) Pace {
	p := Pace{Running: running}
	words := len(strings.Fields(l.Intro)) + len(strings.Fields(l.Recap))
	for _, s := range l.Steps {
		words += len(strings.Fields(s.Title + " " + s.Text + " " + s.After))
		if s.Predict != nil {
			words += len(strings.Fields(s.Predict.Question + " " + s.Predict.Answer))
			p.Thinking += ThinkTime
		}
		for _, c := range s.Try {
			p.Typing += time.Duration(float64(utf8.RuneCountInString(c))/TypeCPS*float64(time.Second)) + ReadOutput
		}
	}
	p.Reading = time.Duration(words) * time.Minute / ReadWPM
	return p
}
