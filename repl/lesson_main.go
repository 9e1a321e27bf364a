package repl

import (
	"flag"
	"fmt"
	"os"

	"stepbox/lessons"
	"stepbox/primitives"
	"stepbox/viz"
)

// LessonMain is `stepbox lesson …`: list, reset, the lesson kit's check,
// or lesson N in the shell, starting where the learner left it.
func LessonMain(args []string, g *globalFlags) int {
	course := lessons.All()
	fs := g.flagSet("stepbox lesson")
	verbose := lessonFlags(fs)
	args, err := parseFlags(fs, args)
	if err != nil {
		return flagFailure("stepbox lesson", err)
	}
	if len(args) == 0 {
		args = []string{"list"}
	}
	if *verbose && args[0] != "check" {
		fmt.Fprintln(os.Stderr, "stepbox lesson: -v is for lesson check only")
		return 2
	}
	dirs, err := g.dirs()
	if err != nil {
		fmt.Fprintln(os.Stderr, "stepbox lesson:", err)
		return 1
	}
	switch args[0] {
	case "list", "reset":
		return progressCommand(course, args, g.plain, g.shellOptions().Progress)
	case "check":
		return KitMain(args[1:], dirs, *verbose)
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
	return runShell(dirs, g.shellOptions(), func(sh *Shell, term *primitives.Terminal) int {
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

// lessonFlags defines `stepbox lesson`'s own flags on fs.
func lessonFlags(fs *flag.FlagSet) (verbose *bool) {
	verbose = fs.Bool("v", false, "lesson check: show each session's output")
	fs.BoolVar(verbose, "verbose", false, "lesson check: show each session's output")
	return verbose
}

// progressCommand is `stepbox lesson list` and `stepbox lesson reset`,
// which need no session.
func progressCommand(course []*lessons.Lesson, args []string, plain bool, dir string) int {
	th := viz.NewTheme("plain")
	if !plain && primitives.IsTerminal(os.Stdout) && os.Getenv("NO_COLOR") == "" {
		th = viz.NewTheme("default")
	}
	p, err := lessons.LoadProgressIn(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stepbox lesson:", err)
	}
	if args[0] == "list" {
		if len(args) > 1 {
			fmt.Fprintln(os.Stderr, "stepbox lesson list: takes no argument")
			return 2
		}
		fmt.Print(lessonList(course, p, th, outputWidth(nil)))
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
