package repl

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"stepbox/lessons"
	"stepbox/primitives"
)

// predictWait is how many times --auto's time the demo leaves a class to
// think over a question before it runs the commands that answer it.
const predictWait = 3

// typingDelay is how long the demo takes per typed character: slow enough
// for a class to read along, quick enough not to bore it.
const typingDelay = 35 * time.Millisecond

// demoOptions are `stepbox demo`'s flags.
type demoOptions struct {
	auto    time.Duration // advance by itself after this long; 0 waits for a key
	noPause bool          // no pauses and no typing delay (CI)
}

// DemoMain is `stepbox demo N [--auto SECONDS] [--no-pause]`: lecture
// playback of lesson N's solution, with its explanations, in a fresh
// session that is torn down at the end.
func DemoMain(args []string, g *globalFlags) int {
	l, opts, err := parseDemoArgs(lessons.All(), g.flagSet("stepbox demo"), args)
	if errors.Is(err, flag.ErrHelp) {
		return flagFailure("stepbox demo", err)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "stepbox demo: %v\nusage: stepbox demo N [--auto SECONDS] [--no-pause] [--web[=ADDR]]\n", err)
		return 2
	}
	dirs, err := g.dirs()
	if err != nil {
		fmt.Fprintln(os.Stderr, "stepbox demo:", err)
		return 1
	}
	o := g.shellOptions()
	return runShell(dirs, o, func(sh *Shell, term *primitives.Terminal) int {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		d := &demo{sh: sh, opts: opts, term: term}
		if term == nil {
			d.lines = bufio.NewReader(os.Stdin)
		} else {
			term.Quiet()
		}
		failed := d.play(ctx, l)
		if d.quit || ctx.Err() != nil {
			fmt.Fprintln(sh.Out, "\n"+sh.Theme.Dim.Render("demo stopped; "+tornDown(sh, "it built")))
		}
		if failed > 0 || ctx.Err() != nil {
			return 1
		}
		return 0
	})
}

// parseDemoArgs reads demo's arguments with fs, which holds the global
// flags; the lesson number and the flags may come in any order.
func parseDemoArgs(course []*lessons.Lesson, fs *flag.FlagSet, args []string) (*lessons.Lesson, demoOptions, error) {
	var opts demoOptions
	auto, noPause := demoFlags(fs)
	// The flag package reads a word such as -1 or -1.5 as a flag named
	// 1 or 1.5; it is a lesson number out of range or not a lesson
	// number, and is said so.
	if w := negativeWord(fs, args); w != "" {
		_, err := lessonArg(course, w)
		return nil, opts, err
	}
	pos, err := parseFlags(fs, args)
	if err != nil {
		return nil, opts, err
	}
	if len(pos) != 1 {
		return nil, opts, fmt.Errorf("name one lesson, 1 to %d", len(course))
	}
	// 0, the default, plays by keys: a --auto that is given must wait a
	// while, or it would not advance by itself at all.
	autoSet := false
	fs.Visit(func(f *flag.Flag) { autoSet = autoSet || f.Name == "auto" })
	if autoSet && !(*auto > 0 && *auto <= math.MaxInt64/float64(time.Second)) {
		return nil, opts, fmt.Errorf("--auto %v: give the seconds to wait, more than 0", *auto)
	}
	opts.auto = time.Duration(*auto * float64(time.Second))
	opts.noPause = *noPause
	l, err := lessonArg(course, pos[0])
	return l, opts, err
}

// negativeWord is the first word of args, flags' values and what follows
// "--" aside, that is a negative number (-1, -1.5, -.5, -0), or "": no
// flag's name starts with a digit or a dot, so such a word was meant as
// a lesson.
func negativeWord(fs *flag.FlagSet, args []string) string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return ""
		}
		if len(a) > 1 && a[0] == '-' && (a[1] == '.' || '0' <= a[1] && a[1] <= '9') {
			return a
		}
		if !strings.HasPrefix(a, "-") || strings.Contains(a, "=") {
			continue
		}
		if f := fs.Lookup(strings.TrimLeft(a, "-")); f != nil {
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !b.IsBoolFlag() {
				i++ // the flag's value, which may be negative: --auto -1
			}
		}
	}
	return ""
}

// demoFlags defines `stepbox demo`'s own flags on fs.
func demoFlags(fs *flag.FlagSet) (auto *float64, noPause *bool) {
	auto = fs.Float64("auto", 0, "advance by itself after `SECONDS`")
	noPause = fs.Bool("no-pause", false, "no pauses and no typing delay (CI)")
	return auto, noPause
}

// demo plays one lesson.
type demo struct {
	sh    *Shell
	opts  demoOptions
	term  *primitives.Terminal // keys come from here, or
	lines *bufio.Reader        // from stdin, a line each, when it is not a terminal
	quit  bool
}

var errQuit = errors.New("demo stopped")

// play shows the lesson's intro, then each step: its text, the question to
// predict, its solution typed and run, its check, the answer. It returns
// how many steps failed their check.
func (d *demo) play(ctx context.Context, l *lessons.Lesson) int {
	sh, th := d.sh, d.sh.Theme
	sh.watch().demo = true
	d.clear()
	var names lessons.Names // the demo makes the boxes the lesson names
	fmt.Fprintln(sh.Out, frame(fmt.Sprintf("Lesson %d · %s", l.Number, l.Title),
		d.body(names.Fill(l.Intro), fmt.Sprintf("%d steps · about %d minutes", len(l.Steps), l.Minutes)), sh.Width, th))
	if sh.web != nil {
		fmt.Fprintln(sh.Out, "  "+th.Dim.Render("live view: ")+th.Cmd.Render(sh.web.srv.URL))
	}
	if d.pause(ctx, "press a key to begin") != nil {
		return 0
	}
	failed := 0
	for i := range l.Steps {
		st := &l.Steps[i]
		sh.web.atStep(l, i)
		d.clear()
		fmt.Fprintln(sh.Out, frame(fmt.Sprintf("Step %d of %d · %s", i+1, len(l.Steps), st.Title), d.body(names.Fill(st.Text), ""), sh.Width, th))
		next := fmt.Sprintf("press a key for step %d", i+2)
		if i+1 == len(l.Steps) {
			next = "press a key to finish"
		}
		if why := st.Unmet(); why != "" {
			fmt.Fprintln(sh.Out, "\n"+renderMarkdown(why, sh.Width-4, th, "  "))
			if d.pause(ctx, next) != nil {
				return failed
			}
			continue
		}
		if st.Predict != nil {
			fmt.Fprintln(sh.Out, "\n"+renderMarkdown("**Predict:** "+names.Fill(st.Predict.Question), sh.Width-4, th, "  "))
			if d.pauseFor(ctx, "think it over, then press a key", predictWait*d.opts.auto) != nil {
				return failed
			}
		}
		fmt.Fprintln(sh.Out)
		// The answer comes right after the command that shows it, before
		// the step's later commands change what it showed, and the demo
		// pauses with both on screen; when that command is the step's
		// last, the answer comes last, after the check.
		answer := func() {
			fmt.Fprintln(sh.Out, frame("Answer", d.body(names.Fill(st.Answer()), ""), sh.Width, th))
		}
		last := false // the answer waits for the end of the step
		err := runSolution(ctx, sh, st, names, d.typeLine, func(more bool) error {
			if !more {
				last = true
				return nil
			}
			answer()
			return d.pause(ctx, "press a key for the rest of the step")
		})
		if ctx.Err() != nil {
			return failed + 1
		}
		if errors.Is(err, errQuit) {
			return failed
		}
		if st.After != "" {
			fmt.Fprintln(sh.Out, "\n"+renderMarkdown(names.Fill(st.After), sh.Width-4, th, "  "))
		}
		r := st.Judge(lessons.Observe(sh.Session, sh.current))
		switch {
		case err == nil && r.Pass:
			fmt.Fprintln(sh.Out, "\n"+verdict(th.Good, "✓", r.Saw, sh.Width-4, th, "  "))
		default:
			failed++
			fmt.Fprintln(sh.Out, "\n"+verdict(th.Bad, "✗ the step's check did not pass:", r.Saw, sh.Width-4, th, "  "))
		}
		if last {
			answer()
		}
		if d.pause(ctx, next) != nil {
			return failed
		}
	}
	summary := fmt.Sprintf("All %d steps ran and passed their checks. Every box goes away now; the host is as it was.", len(l.Steps))
	if failed > 0 {
		summary = fmt.Sprintf("%d of %d steps did not pass their checks.", failed, len(l.Steps))
	}
	if l.Recap != "" {
		d.clear()
		fmt.Fprintln(sh.Out, frame("Recap", d.body(names.Fill(l.Recap), ""), sh.Width, th))
	}
	fmt.Fprintln(sh.Out, frame(fmt.Sprintf("End of lesson %d", l.Number), d.body(summary, ""), sh.Width, th))
	if sh.web != nil {
		// The page shows the end and the recap, and stays until the
		// lecturer closes it: the session's end would take it away.
		sh.web.finished(sh, l, summary, names.Fill(l.Recap))
		// Any key ends it, q and Ctrl-C too: the demo is over, not stopped.
		d.pauseFor(ctx, "press a key to close the live view and end the demo", 0)
		d.quit = false
	}
	return failed
}

// body wraps Markdown for a frame, with an optional dim last line.
func (d *demo) body(md, foot string) []string {
	lines := strings.Split(renderMarkdown(md, d.sh.Width-10, d.sh.Theme, ""), "\n")
	if foot != "" {
		lines = append(lines, "", d.sh.Theme.Dim.Render(foot))
	}
	return lines
}

// typeLine types a command at the prompt, a character at a time.
func (d *demo) typeLine(line string) {
	sh := d.sh
	if d.opts.noPause {
		sh.command(sh.echoPrompt(), line)
		return
	}
	// Typed as folded: a long command breaks outside its quotes.
	prompt := sh.echoPrompt()
	fmt.Fprint(sh.Out, sh.Theme.Cmd.Render(prompt))
	for _, r := range strings.TrimPrefix(commandLines(prompt, line, sh.Width), prompt) {
		fmt.Fprint(sh.Out, sh.Theme.Cmd.Render(string(r)))
		time.Sleep(typingDelay)
	}
	fmt.Fprintln(sh.Out)
}

// pause waits for a key, or --auto's time; errQuit when the lecturer
// pressed q, or the context ended.
func (d *demo) pause(ctx context.Context, what string) error {
	return d.pauseFor(ctx, what, d.opts.auto)
}

// pauseFor is pause, waiting auto instead of --auto's time when --auto
// is given.
func (d *demo) pauseFor(ctx context.Context, what string, auto time.Duration) error {
	sh := d.sh
	switch {
	case d.quit || ctx.Err() != nil:
		return errQuit
	case d.opts.noPause:
		return nil
	case auto > 0:
		fmt.Fprintln(sh.Out, "\n"+sh.Theme.Dim.Render(fmt.Sprintf("  … next in %s", strconv.FormatFloat(auto.Seconds(), 'f', -1, 64)+"s")))
		select {
		case <-time.After(auto):
			return nil
		case <-ctx.Done():
			return errQuit
		}
	}
	fmt.Fprintln(sh.Out, "\n"+sh.Theme.Dim.Render("  ▸ "+what+" (q quits)"))
	var key string
	if d.term != nil {
		b, err := d.term.ReadKey()
		if err != nil {
			return errQuit
		}
		key = string(b)
	} else {
		line, err := d.lines.ReadString('\n')
		if err != nil {
			// Stdin is used up: play the rest without pausing.
			d.opts.noPause = true
		}
		key = strings.TrimSpace(line)
	}
	if key == "q" || key == "Q" || key == "\x03" {
		d.quit = true
		return errQuit
	}
	return nil
}

// clear empties the screen between steps on a terminal.
func (d *demo) clear() {
	if d.term != nil && !d.sh.Theme.Plain {
		fmt.Fprint(d.sh.Out, "\x1b[H\x1b[2J")
	}
}
