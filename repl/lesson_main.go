package repl

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"

	"stepbox/lessons"
	"stepbox/primitives"
	"stepbox/viz"
)

// ShellOptions are the global flags the shell of a subcommand needs.
type ShellOptions struct {
	Plain  bool
	Theme  string
	Record string // --record FILE
}

// theme picks the theme as Main does: plain without a terminal or colour.
func (o ShellOptions) theme() (viz.Theme, error) {
	mode := o.Theme
	if o.Plain || os.Getenv("NO_COLOR") != "" || !primitives.IsTerminal(os.Stdout) {
		mode = "plain"
	}
	if mode != "default" && mode != "contrast" && mode != "plain" {
		return viz.Theme{}, fmt.Errorf("--theme %q: use default or contrast", mode)
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

// LessonMain is `stepbox lesson …`: list, reset, the lesson kit's check,
// or lesson N in the shell, starting where the learner left it.
func LessonMain(args []string, dirs primitives.Dirs, o ShellOptions) int {
	course := lessons.All()
	if len(args) == 0 {
		args = []string{"list"}
	}
	switch args[0] {
	case "list", "reset":
		return progressCommand(course, args)
	case "check":
		return KitMain(args[1:], dirs)
	}
	if len(args) > 1 {
		fmt.Fprintf(os.Stderr, "stepbox lesson: unexpected %q: usage: stepbox lesson [N|list|reset [N|all]|check [N|FILE…]]\n", args[1])
		return 2
	}
	l, err := lessonArg(course, args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "stepbox lesson:", err)
		return 2
	}
	return runShell(dirs, o, func(sh *Shell, term *primitives.Terminal) int {
		w := sh.watch()
		w.loadCourse(sh)
		w.open(sh, l)
		if term != nil {
			sh.Interactive(term)
			return 0
		}
		return runScript(sh, "-")
	})
}

// progressCommand is `stepbox lesson list` and `stepbox lesson reset`,
// which need no session.
func progressCommand(course []*lessons.Lesson, args []string) int {
	th := viz.NewTheme("plain")
	if primitives.IsTerminal(os.Stdout) && os.Getenv("NO_COLOR") == "" {
		th = viz.NewTheme("default")
	}
	p, err := lessons.LoadProgress()
	if err != nil {
		fmt.Fprintln(os.Stderr, "stepbox lesson:", err)
	}
	if args[0] == "list" {
		if len(args) > 1 {
			fmt.Fprintln(os.Stderr, "stepbox lesson list: takes no argument")
			return 2
		}
		fmt.Print(lessonList(course, p, th))
		return 0
	}
	if len(args) > 2 {
		fmt.Fprintln(os.Stderr, "stepbox lesson reset: give one lesson number, or all")
		return 2
	}
	msg, err := resetProgress(course, p, nil, args[1:])
	if err == nil {
		err = p.Save()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "stepbox lesson reset:", err)
		return 1
	}
	fmt.Println("stepbox:", msg)
	return 0
}
