package lessons

import (
	"fmt"
	"strconv"
	"strings"

	"stepbox/primitives"
)

// A lesson file is Markdown:
//
//	---
//	title: One kernel, many views
//	minutes: 8
//	---
//	The introduction.
//
//	## A step's title
//	What to know before trying it.
//	```try
//	new web
//	```
//	What to look for afterwards.
//	```check
//	own-namespace uts
//	```
//	```hint shares-host
//	The hint shown when the check finds the box sharing the host's namespace.
//	```
//	```predict
//	A question to answer before running the commands.
//	---
//	Its answer.
//	```
//	```solution
//	new {web}
//	? exec hostname
//	unshare uts
//	```
//	```needs linux 6.3
//	Why the step needs that kernel, and what shows the idea on an older one.
//	```needs root
//	Why the step cannot work rootless (a host command of its solution that
//	the kernel refuses a normal user), and what to do.
//	```
//	```try rootless
//	exec id -u
//	```
//	```predict rootless
//	The answer where stepbox runs rootless and a box shows another one.
//	```
//	```solution rootless
//	? exec id -u
//	```
//
// A step that cannot be built rootless (a ```needs root block, or a
// solution line stepbox refuses rootless, Step.RefusedRootless) says why
// instead of its try block; a ```try rootless block lists what still
// shows its idea there, and its prediction is asked only when that list
// holds the command that answers it. A ```solution rootless block is the
// step's solution in a rootless session (Parse puts it in Solution there):
// the commands that build what the step teaches where the root's need a
// capability a normal user lacks (nsenter without -U).
//
// Prose before the try block is the step's text, prose after it comes
// after the commands. Each check line is a registered check and its
// arguments; each hint block is chosen by the finding it names (none: the
// step's fallback). A needs block names the first kernel with what the step
// needs: on an older one the step is explained (Step.Unmet), not run.
//
// The solution line marked '?' is the prediction's evidence: the command
// whose output answers the question, placed at the moment the question is
// about. The demo and `solution --run` show the answer right after it.
//
// {web} is a box of the lesson, named where a `new {web}` line of a
// solution makes it: the lesson shows each such name as the box the
// learner made in its place (see Names). A ```recap block, after the last
// step, closes the lesson.

// Parse reads one lesson file; name is used in errors and for the lesson's ID.
func Parse(name, src string) (*Lesson, error) {
	p := &parser{file: name, lines: strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n")}
	l := &Lesson{File: name, ID: lessonID(name)}
	if err := p.frontMatter(l); err != nil {
		return nil, err
	}
	var intro []string
	var cur *Step
	var prose []string
	flush := func() {
		text := strings.TrimSpace(strings.Join(prose, "\n"))
		prose = nil
		switch {
		case cur == nil:
			if text != "" {
				intro = append(intro, text)
			}
		case len(cur.Try) == 0:
			cur.Text = joinProse(cur.Text, text)
		default:
			cur.After = joinProse(cur.After, text)
		}
	}
	for p.n < len(p.lines) {
		line := p.lines[p.n]
		p.n++
		switch {
		case strings.HasPrefix(line, "## "):
			flush()
			if l.Recap != "" {
				return nil, p.errorf("step %q after the ```recap block, which closes the lesson", strings.TrimSpace(line[3:]))
			}
			l.Steps = append(l.Steps, Step{Title: strings.TrimSpace(line[3:]), Line: p.n, Hints: map[string]string{}, Evidence: -1})
			cur = &l.Steps[len(l.Steps)-1]
		case strings.HasPrefix(line, "# "):
			if l.Title == "" {
				l.Title = strings.TrimSpace(line[2:])
			}
		case strings.HasPrefix(line, "```"):
			flush()
			if err := p.block(l, cur, strings.TrimSpace(line[3:])); err != nil {
				return nil, err
			}
		default:
			prose = append(prose, line)
		}
	}
	flush()
	l.Intro = strings.Join(intro, "\n\n")
	if l.Title == "" {
		return nil, fmt.Errorf("%s: no title: start the file with front matter holding `title:`", name)
	}
	if len(l.Steps) == 0 {
		return nil, fmt.Errorf("%s: no steps: each step starts with a `## ` heading", name)
	}
	// Rootless, a step's rootless solution is its solution: the one the
	// kit runs, `solution` shows and the prediction's moment is read from.
	for i := range l.Steps {
		if s := &l.Steps[i]; s.solutionRootless != nil && primitives.Rootless() {
			s.Solution, s.Evidence = s.solutionRootless.lines, s.solutionRootless.evidence
		}
	}
	return l, nil
}

func joinProse(a, b string) string {
	if a == "" || b == "" {
		return a + b
	}
	return a + "\n\n" + b
}

type parser struct {
	file  string
	lines []string
	n     int // the next line to read (0-based)
}

func (p *parser) errorf(format string, args ...any) error { return p.errAt(p.n, format, args...) }

func (p *parser) errAt(line int, format string, args ...any) error {
	return fmt.Errorf("%s:%d: %s", p.file, line, fmt.Sprintf(format, args...))
}

func (p *parser) frontMatter(l *Lesson) error {
	if len(p.lines) == 0 || strings.TrimSpace(p.lines[0]) != "---" {
		return nil
	}
	p.n = 1
	for p.n < len(p.lines) {
		line := strings.TrimSpace(p.lines[p.n])
		p.n++
		if line == "---" {
			return nil
		}
		if line == "" {
			continue
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			return p.errorf("front matter: %q is not `key: value`", line)
		}
		value = strings.TrimSpace(value)
		switch strings.TrimSpace(key) {
		case "title":
			l.Title = value
		case "minutes":
			m, err := strconv.Atoi(value)
			if err != nil || m <= 0 {
				return p.errorf("minutes: %q is not a positive number", value)
			}
			l.Minutes = m
		default:
			return p.errorf("front matter: unknown key %q: use title or minutes", key)
		}
	}
	return p.errorf("front matter: no closing ---")
}

// block reads a fenced block whose opening line has been read.
func (p *parser) block(l *Lesson, cur *Step, info string) error {
	at := p.n // the opening fence's line number
	var body []string
	closed := false
	for p.n < len(p.lines) {
		line := p.lines[p.n]
		p.n++
		if strings.TrimSpace(line) == "```" {
			closed = true
			break
		}
		body = append(body, line)
	}
	kind, arg, _ := strings.Cut(info, " ")
	arg = strings.TrimSpace(arg)
	switch {
	case !closed:
		return p.errAt(at, "the ```%s block is not closed", info)
	case cur == nil:
		return p.errAt(at, "a ```%s block before the first step (`## ` heading)", kind)
	case arg == "rootless" && (kind == "try" || kind == "predict" || kind == "solution"):
		return p.rootlessBlock(cur, kind, body, at)
	case kind != "hint" && kind != "needs" && arg != "":
		return p.errAt(at, "```%s takes nothing after its name (only hint names a finding, needs a kernel, and try and predict may say rootless)", kind)
	}
	switch kind {
	case "try":
		cur.Try = append(cur.Try, commandLines(body)...)
	case "solution":
		for _, line := range commandLines(body) {
			if rest, ok := strings.CutPrefix(line, "?"); ok {
				if cur.Evidence >= 0 {
					return p.errAt(at, "two solution lines of step %q are marked ? : mark only the one whose output answers the prediction", cur.Title)
				}
				cur.Evidence, line = len(cur.Solution), strings.TrimSpace(rest)
			}
			cur.Solution = append(cur.Solution, line)
		}
	case "recap":
		if l.Recap != "" {
			return p.errAt(at, "a second ```recap block: a lesson has one, after its last step")
		}
		l.Recap = strings.TrimSpace(strings.Join(body, "\n"))
	case "check":
		for _, line := range commandLines(body) {
			f := strings.Fields(line)
			cur.Checks = append(cur.Checks, CheckCall{Name: f[0], Args: f[1:]})
		}
	case "hint":
		if _, dup := cur.Hints[arg]; dup {
			return p.errAt(at, "two hints for finding %q", arg)
		}
		cur.Hints[arg] = strings.TrimSpace(strings.Join(body, "\n"))
	case "predict":
		if cur.Predict != nil {
			return p.errAt(at, "a second ```predict block in step %q", cur.Title)
		}
		q, a, ok := cutLine(body, "---")
		if !ok || q == "" || a == "" {
			return p.errAt(at, "a ```predict block holds the question, a line ---, and the answer")
		}
		cur.Predict = &Predict{Question: q, Answer: a}
	case "needs":
		if arg == "root" {
			why := strings.TrimSpace(strings.Join(body, "\n"))
			if cur.Needs != nil || why == "" {
				return p.errAt(at, "a step has at most one ```needs block; ```needs root says why the step cannot work rootless and what to do")
			}
			cur.Needs = &Need{Root: true, Why: why}
			break
		}
		release, ok := strings.CutPrefix(arg, "linux ")
		var major, minor int
		if n, _ := fmt.Sscanf(release, "%d.%d", &major, &minor); !ok || n != 2 || release != fmt.Sprintf("%d.%d", major, minor) {
			return p.errAt(at, "```needs %s: name a kernel as `needs linux 6.3`, or `needs root`", arg)
		}
		why := strings.TrimSpace(strings.Join(body, "\n"))
		if cur.Needs != nil || why == "" {
			return p.errAt(at, "a step has at most one ```needs block, which says why the step needs Linux %s and what shows the idea on an older kernel", release)
		}
		cur.Needs = &Need{Linux: release, Why: why}
	default:
		return p.errAt(at, "unknown block ```%s: use try, check, hint, predict, needs, solution or recap", kind)
	}
	return nil
}

// rootlessBlock reads a ```try rootless block (the commands a step that
// cannot be built rootless still shows, after saying why) or a ```predict
// rootless block (the answer to the step's question where a rootless box
// shows another one).
func (p *parser) rootlessBlock(cur *Step, kind string, body []string, at int) error {
	if kind == "solution" {
		if cur.solutionRootless != nil {
			return p.errAt(at, "a second ```solution rootless block in step %q", cur.Title)
		}
		cur.solutionRootless = &rootlessSolution{evidence: -1}
		for _, line := range commandLines(body) {
			if rest, ok := strings.CutPrefix(line, "?"); ok {
				cur.solutionRootless.evidence, line = len(cur.solutionRootless.lines), strings.TrimSpace(rest)
			}
			cur.solutionRootless.lines = append(cur.solutionRootless.lines, line)
		}
		return nil
	}
	if kind == "try" {
		if cur.TryRootless != nil {
			return p.errAt(at, "a second ```try rootless block in step %q", cur.Title)
		}
		cur.TryRootless = commandLines(body)
		return nil
	}
	answer := strings.TrimSpace(strings.Join(body, "\n"))
	if cur.AnswerRootless != "" || answer == "" {
		return p.errAt(at, "a step has at most one ```predict rootless block, which holds the answer a rootless box shows (the question is the ```predict block's)")
	}
	cur.AnswerRootless = answer
	return nil
}

// commandLines drops blank lines and comments.
func commandLines(body []string) []string {
	var out []string
	for _, l := range body {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// cutLine splits body at the first line equal to sep.
func cutLine(body []string, sep string) (before, after string, ok bool) {
	for i, l := range body {
		if strings.TrimSpace(l) == sep {
			return strings.TrimSpace(strings.Join(body[:i], "\n")), strings.TrimSpace(strings.Join(body[i+1:], "\n")), true
		}
	}
	return "", "", false
}
