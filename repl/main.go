package repl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"

	"stepbox/primitives"
	"stepbox/viz"
)

// Version is stepbox's version, set at build time with -ldflags.
var Version = "dev"

const usage = `stepbox: build a real Linux container one kernel step at a time.

usage:
  stepbox [flags]              the interactive shell (reads commands from stdin without a terminal)
  stepbox [flags] run FILE|-   run a script of stepbox commands; stop at the first failure (exit 1)
  stepbox [flags] cleanup      remove what crashed sessions left behind
  stepbox [flags] lesson [N]   lesson N in the shell, from where you left it; also lesson list,
                               lesson reset [N|all], lesson check [N|FILE.md…] (run the lessons' solutions)
  stepbox [flags] demo N       play lesson N for a class: --auto SECONDS advances by itself, --no-pause for CI
  stepbox doctor               what this kernel offers: namespaces, overlay, cgroups, user namespaces
  stepbox version

flags:
  --state-dir DIR   keep state under DIR (default /run/stepbox and /var/lib/stepbox; also $STEPBOX_STATE_DIR)
  --plain           no colours or escape codes (also NO_COLOR=1, and whenever output is not a terminal)
  --theme NAME      colour theme: default, or contrast for projectors
  --cgroup-parent P put stepbox's cgroups under P (a cgroup path such as /mine) instead of the session's own cgroup
  --record FILE     write an asciicast v2 recording of the session or demo to FILE

Inside, 'help' lists the commands.
`

// Main runs stepbox with the given arguments and returns its exit code.
func Main(args []string) int {
	fs := flag.NewFlagSet("stepbox", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	stateDir := fs.String("state-dir", "", "")
	plain := fs.Bool("plain", false, "")
	theme := fs.String("theme", "default", "")
	record := fs.String("record", "", "")
	fs.StringVar(&primitives.CgroupParentOverride, "cgroup-parent", "", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Print(usage)
			return 0
		}
		fmt.Fprintf(os.Stderr, "stepbox: %v\n\n%s", err, usage)
		return 2
	}
	rest := fs.Args()
	sub := ""
	if len(rest) > 0 {
		sub = rest[0]
	}
	dirs, err := primitives.DefaultDirs(*stateDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stepbox:", err)
		return 1
	}
	switch sub {
	case "version":
		fmt.Println("stepbox", Version)
		return 0
	case "help":
		fmt.Print(usage)
		return 0
	case "doctor":
		return doctor()
	case "cleanup":
		rep, err := primitives.Sweep(dirs)
		fmt.Printf("stepbox cleanup: %d crashed session(s) cleaned, %d stray process(es) ended, %d leftover cgroup(s) removed\n", len(rep.Sessions), rep.Processes, rep.Cgroups)
		if err != nil {
			fmt.Fprintln(os.Stderr, "stepbox cleanup:", err)
			return 1
		}
		return 0
	case "run":
		if len(rest) != 2 {
			fmt.Fprintln(os.Stderr, "stepbox run: give one script file, or - for stdin")
			return 2
		}
	case "lesson":
		return LessonMain(rest[1:], dirs, ShellOptions{Plain: *plain, Theme: *theme, Record: *record})
	case "demo":
		return DemoMain(rest[1:], dirs, ShellOptions{Plain: *plain, Theme: *theme, Record: *record})
	case "":
	default:
		fmt.Fprintf(os.Stderr, "stepbox: unknown command %q\n\n%s", sub, usage)
		return 2
	}
	o := ShellOptions{Plain: *plain, Theme: *theme, Record: *record}
	return runShell(dirs, o, func(sh *Shell, term *primitives.Terminal) int {
		switch {
		case sub == "run":
			return runScript(sh, rest[1])
		case term != nil:
			sh.Interactive(term)
			return 0
		default:
			return runScript(sh, "-")
		}
	})
}

// ShellOptions are the global flags the shell of a subcommand needs.
type ShellOptions struct {
	Plain  bool
	Theme  string
	Record string // --record FILE
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
	s, err := primitives.OpenSession(dirs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stepbox:", err)
		return 1
	}
	// Without a terminal to ask, $COLUMNS (as shells set it) gives the width.
	width := 100
	if c, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && c >= 80 {
		width = c
	}
	sh := NewShell(s, os.Stdout, os.Stderr, th, width)
	var term *primitives.Terminal
	if primitives.IsTerminal(os.Stdin) {
		if term, err = primitives.OpenTerminal(os.Stdin); err != nil {
			fmt.Fprintln(os.Stderr, "stepbox:", err)
			s.Close()
			return 1
		}
		if w := term.Width(); w > 0 {
			sh.Width = max(w, 80)
		}
	}
	if err := sh.Record(o.Record, term); err != nil {
		fmt.Fprintln(os.Stderr, "stepbox:", err)
		s.Close()
		return 1
	}
	var once sync.Once
	code := 0
	teardown := func() int {
		once.Do(func() {
			term.Restore()
			if err := s.Close(); err != nil {
				fmt.Fprintln(os.Stderr, "stepbox: teardown:", err)
				code = 1
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
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	go func() {
		sig := <-sigs
		teardown()
		os.Exit(128 + int(sig.(syscall.Signal)))
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

func runScript(sh *Shell, name string) int {
	f := os.Stdin
	if name != "-" {
		var err error
		if f, err = os.Open(name); err != nil {
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
			fmt.Fprintf(os.Stderr, "stepbox run: %s line %d failed; everything the script made has been torn down\n", se.File, se.Line)
		} else {
			fmt.Fprintln(os.Stderr, "stepbox run:", err)
		}
		return 1
	}
	return 0
}

// doctor prints what the kernel offers stepbox, read live.
func doctor() int {
	th := viz.NewTheme("plain")
	if primitives.IsTerminal(os.Stdout) && os.Getenv("NO_COLOR") == "" {
		th = viz.NewTheme("default")
	}
	code := 0
	for _, c := range primitives.Doctor() {
		mark := th.Good.Render("ok ")
		if !c.OK {
			mark = th.Bad.Render("no ")
			code = 1
		}
		fmt.Printf("%s %-18s %s\n", mark, c.Name, c.Found)
		if c.Advice != "" && !c.OK {
			fmt.Printf("    %s\n", th.Dim.Render(c.Advice))
		}
	}
	return code
}
