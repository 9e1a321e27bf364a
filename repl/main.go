package repl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"stepbox/primitives"
	"stepbox/primitives/step"
	"stepbox/viz"
)

// Main runs stepbox with the given arguments and returns its exit code.
// The global flags may stand before the subcommand or anywhere after it.
func Main(args []string) int {
	g := &globalFlags{theme: "default"}
	fs := g.flagSet("stepbox")
	if err := fs.Parse(webArgs(args)); err != nil {
		return flagFailure("stepbox", flagError(fs, err))
	}
	rest := fs.Args()
	sub := ""
	if len(rest) > 0 {
		sub, rest = rest[0], rest[1:]
	}
	switch sub {
	case "lesson":
		return LessonMain(rest, g)
	case "demo":
		return DemoMain(rest, g)
	case "completion":
		return completionMain(rest)
	case manCommand:
		fmt.Print(manPage())
		return 0
	case "version", "help", "doctor", "cleanup", "run", "":
	default:
		fmt.Fprintf(os.Stderr, "stepbox: unknown command %q%s\n\n%s", clip(sub), didYouMean(sub, subcommands), usageText())
		return 2
	}
	words, err := parseFlags(g.flagSet("stepbox "+sub), rest)
	if err != nil {
		return flagFailure("stepbox "+sub, err)
	}
	if sub == "run" {
		if len(words) != 1 {
			fmt.Fprintln(os.Stderr, "stepbox run: give one script file, or - for stdin")
			return 2
		}
	} else if len(words) > 0 {
		fmt.Fprintf(os.Stderr, "stepbox %s: unexpected %q: it takes no arguments\n", sub, clip(words[0]))
		return 2
	}
	dirs, err := g.dirs()
	if err != nil {
		fmt.Fprintln(os.Stderr, "stepbox:", err)
		return 1
	}
	switch sub {
	case "version":
		fmt.Println(versionLine(readBuildInfo()))
		return 0
	case "help":
		fmt.Print(usageText())
		return 0
	case "doctor":
		return doctor()
	case "cleanup":
		rep, err := primitives.Sweep(dirs)
		if refused := (*primitives.StateDirRefused)(nil); errors.As(err, &refused) {
			fmt.Fprintln(os.Stderr, "stepbox cleanup:", err)
			return 1
		}
		fmt.Printf("stepbox cleanup: %s cleaned, %s ended, %s removed\n%s", step.Count(len(rep.Sessions), "crashed session"), step.Count(rep.Processes, "process"), step.Count(rep.Cgroups, "leftover cgroup"), sweptLines(rep))
		if err != nil {
			fmt.Fprintln(os.Stderr, "stepbox cleanup:", err)
			return 1
		}
		return 0
	}
	return runShell(dirs, g.shellOptions(), func(sh *Shell, term *primitives.Terminal) int {
		switch {
		case sub == "run":
			return runScript(sh, words[0])
		case term != nil:
			sh.Interactive(term)
			return 0
		default:
			return runScript(sh, "-")
		}
	})
}

// flagFailure reports a bad flag of command cmd (or prints the usage for
// --help) and returns the exit code.
func flagFailure(cmd string, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		fmt.Print(usageText())
		return 0
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n  stepbox --help shows the usage\n", cmd, err)
	return 2
}

// ShellOptions are the global flags the shell of a subcommand needs.
type ShellOptions struct {
	Plain  bool
	Theme  string
	Record string // --record FILE
	Web    string // --web ADDR: the live view's address
	// Progress is the state dir the learner chose (--state-dir or
	// $STEPBOX_STATE_DIR), which keeps the lesson progress too; "" keeps
	// it in $XDG_STATE_HOME.
	Progress string
}

// theme picks the theme as Main does: plain without a terminal or colour.
func (o ShellOptions) theme() (viz.Theme, error) {
	mode := o.Theme
	if mode != "default" && mode != "contrast" {
		return viz.Theme{}, fmt.Errorf("--theme %q: use default or contrast", mode)
	}
	if o.Plain || os.Getenv("NO_COLOR") != "" || !primitives.IsTerminal(os.Stdout) {
		mode = "plain"
	}
	return viz.NewTheme(mode), nil
}

// runShell opens a session and a shell over the terminal (when stdin is
// one), lets run drive it, and tears everything down on every way out:
// return, SIGTERM, SIGHUP, a panic.
func runShell(dirs primitives.Dirs, o ShellOptions, run func(sh *Shell, term *primitives.Terminal) int) int {
	th, err := o.theme()
	if err != nil {
		fmt.Fprintln(os.Stderr, "stepbox:", err)
		return 2
	}
	if code := checkStartup(); code != 0 {
		return code
	}
	s, err := primitives.OpenSession(dirs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stepbox:", err)
		return 1
	}
	if len(s.Swept.Sessions) > 0 {
		fmt.Fprintf(os.Stderr, "stepbox: cleaned up after crashed %s %s:\n%s", step.Plural(len(s.Swept.Sessions), "session"),
			sessionPIDs(s.Swept.Sessions), sweptLines(s.Swept))
	}
	sayRootless()
	var term *primitives.Terminal
	if primitives.IsTerminal(os.Stdin) {
		if term, err = primitives.OpenTerminal(os.Stdin); err != nil {
			fmt.Fprintln(os.Stderr, "stepbox:", err)
			s.Close()
			return 1
		}
	}
	sh := NewShell(s, os.Stdout, os.Stderr, th, outputWidth(term))
	sh.outNull = nullDevice(os.Stdout)
	sh.outTTY, sh.errTTY = primitives.IsTerminal(os.Stdout), primitives.IsTerminal(os.Stderr)
	sh.oneTTY = primitives.SameTerminal(os.Stdout, os.Stderr)
	sh.outFile, sh.errFile = !sh.outTTY && !sh.outNull, !sh.errTTY && !nullDevice(os.Stderr)
	sh.oneFile = sh.outFile && primitives.SameFile(os.Stdout, os.Stderr)
	layersChecked := sh.checkLayersAhead()
	sh.watch().progressDir = o.Progress
	if err := sh.Record(o.Record, term); err != nil {
		fmt.Fprintln(os.Stderr, "stepbox:", err)
		s.Close()
		return 1
	}
	if o.Web != "" {
		if err := sh.StartWeb(o.Web); err != nil {
			fmt.Fprintln(os.Stderr, "stepbox: --web:", err)
			s.Close()
			return 1
		}
	}
	var once sync.Once
	code := 0
	teardown := func() int {
		once.Do(func() {
			sh.StopWeb()
			term.Restore()
			layersChecked()
			escape := sh.escapers()
			err := s.Close()
			if notes, ok := err.(primitives.TeardownNotes); ok {
				for _, n := range notes {
					fmt.Fprintln(os.Stderr, viz.Hang("stepbox: teardown: ", printable(n), sh.Width))
				}
				err = nil
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "stepbox: teardown:", err)
				code = 1
			}
			for _, note := range unfoundNotes(escape, err) {
				fmt.Fprintln(os.Stderr, viz.Hang("stepbox: ", note, sh.Width))
			}
			if rec := sh.watch().rec; rec != nil {
				if err := rec.Close(); err != nil {
					fmt.Fprintln(os.Stderr, "stepbox:", err)
					code = 1
				}
			}
		})
		return code
	}
	sigs := make(chan os.Signal, 1)
	// SIGPIPE too: `stepbox demo 1 | head` ends the reader, and the
	// session's boxes must go as on any other way out. And SIGQUIT, the
	// Ctrl-\ a learner presses to stop something (ut34 F10): Go's own
	// handler dumped the goroutines and exited, leaving the boxes' upper
	// tmpfs mounted and the session's cgroups behind.
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	go func() {
		for sig := range sigs {
			if sig == syscall.SIGPIPE && !outputGone(1, 2) {
				continue // a browser's connection, a box's pipe: not ours to die of
			}
			if sig == syscall.SIGQUIT && sh.prompting.Load() {
				continue // the prompt's: it stops the command under way, as Ctrl-C does
			}
			sh.Leave()
			failed := teardown() != 0
			if sig == syscall.SIGQUIT {
				// Unlike SIGTERM's and SIGHUP's, a key's: the learner
				// is there to read what it did.
				said := "everything the session made has been torn down"
				if failed {
					said = "the teardown failed, as said above"
				}
				if sh.errTTY {
					fmt.Fprintln(os.Stderr) // below the ^\ the terminal echoed
				}
				fmt.Fprintln(os.Stderr, viz.Hang("stepbox: ", "quit (SIGQUIT, Ctrl-\\): "+said, sh.Width))
			}
			os.Exit(128 + int(sig.(syscall.Signal)))
		}
	}()
	defer func() {
		if r := recover(); r != nil {
			teardown()
			panic(r)
		}
	}()
	ran := run(sh, term)
	if teardown() != 0 && ran == 0 {
		ran = 1
	}
	return ran
}

// checkStartup refuses, before a session opens, a setting that would
// otherwise quietly take a bound from every box ($STEPBOX_UPPER_MB,
// --cgroup-parent), and says what $STEPBOX_UPPER_MB=0 gives up. Its exit
// code: 0, or 2 as for a bad flag.
func checkStartup() int {
	note, err := primitives.CheckUpperSizeEnv()
	if err == nil {
		err = primitives.CheckCgroupParent()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "stepbox:", err)
		return 2
	}
	if note != "" {
		fmt.Fprintln(os.Stderr, "stepbox:", note)
	}
	return 0
}

func runScript(sh *Shell, name string) int {
	f := os.Stdin
	if name != "-" {
		var err error
		if f, err = openScript(name); err != nil {
			fmt.Fprintln(os.Stderr, "stepbox run:", err)
			return 1
		}
		defer f.Close()
	}
	// In a script, Ctrl-C cancels the running command and stops the run.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := sh.RunScript(ctx, f, name); err != nil {
		var se *ScriptError
		if errors.As(err, &se) {
			fmt.Fprintln(os.Stderr, viz.Hang("stepbox run: ", fmt.Sprintf("%s failed; %s", se.Where(), tornDown(sh, "the script made")), sh.Width))
		} else {
			fmt.Fprintln(os.Stderr, "stepbox run:", err)
		}
		return 1
	}
	return 0
}

// tornDown tears the session down now, so that what it says is already
// true when it is read: "everything WHAT has been torn down", or what
// failed. The teardown on the way out finds nothing left to do.
func tornDown(sh *Shell, what string) string {
	escape := sh.escapers()
	err := sh.Session.Close()
	said := "everything " + what + " has been torn down"
	if notes, ok := err.(primitives.TeardownNotes); ok {
		said += "; " + printable(notes.Error())
		err = nil
	}
	if err != nil {
		said = "tearing down what " + what + " failed: " + err.Error()
	}
	for _, note := range unfoundNotes(escape, err) {
		said += "; " + note
	}
	return said
}

// doctor prints what the kernel offers stepbox, read live.
func doctor() int {
	th := viz.NewTheme("plain")
	if primitives.IsTerminal(os.Stdout) && os.Getenv("NO_COLOR") == "" {
		th = viz.NewTheme("default")
	}
	code := 0
	width := outputWidth(nil)
	for _, c := range primitives.Doctor() {
		mark := th.Good.Render("ok ")
		switch {
		case c.Moot:
			mark = th.Dim.Render("-- ")
		case !c.OK:
			mark = th.Bad.Render("no ")
			code = 1
		}
		fmt.Println(viz.Hang(fmt.Sprintf("%s %-18s ", mark, c.Name), c.Found, width))
		if c.Advice != "" && !c.OK && !c.Moot {
			fmt.Println(viz.Hang("    ", th.Dim.Render(c.Advice), width))
		}
	}
	return code
}

// sweptLines is what a sweep removed, a line each, indented.
func sweptLines(rep primitives.SweepReport) string {
	var b strings.Builder
	for _, l := range rep.Removed {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}

// sessionPIDs names sessions ("<pid>-<start>") by their PIDs.
func sessionPIDs(ids []string) string {
	var pids []string
	for _, id := range ids {
		pid, _, _ := strings.Cut(id, "-")
		pids = append(pids, pid)
	}
	return "PID " + strings.Join(pids, ", ")
}

// sayRootless tells, once at start-up, that stepbox runs rootless and
// what that means (primitives/rootless.go).
func sayRootless() {
	if !primitives.Rootless() {
		return
	}
	// Folded at words, to standard error's terminal when it is one.
	width := (&primitives.Terminal{File: os.Stderr}).Width()
	if width <= 0 {
		width = outputWidth(nil)
	}
	for _, l := range primitives.RootlessLines() {
		fmt.Fprintln(os.Stderr, viz.Wrap("stepbox: "+l, width, "         "))
	}
}
