package repl

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/charmbracelet/lipgloss"

	"stepbox/primitives"

	"stepbox/primitives/outfile"
	"stepbox/primitives/step"
	"stepbox/viz"
)

// groups orders `help`.
var groups = []struct{ name, title string }{
	{"box", "Boxes"},
	{"namespaces", "Namespaces"},
	{"filesystem", "Filesystem"},
	{"cgroups", "cgroups"},
	{"network", "Network"},
	{"security", "Security"},
	{"processes", "Processes"},
	{"lessons", "Lessons"},
	{"session", "Session"},
}

func init() {
	register(
		&Command{
			Name: "help", Group: "session", Usage: "help [CMD]", MaxArgs: -1,
			Summary: "list the commands, or explain one", Example: "help unshare",
			Complete: func(sh *Shell, args []string) []Suggestion {
				if len(args) > 1 {
					return nil
				}
				var out []Suggestion
				for _, c := range commands {
					out = append(out, Suggestion{Text: c.Name, Description: c.Summary})
				}
				return out
			},
			Run: runHelp,
		},
		&Command{
			Name: "explain", Group: "session", Usage: "explain [on|off|CMD…]", MaxArgs: -1, RawArgs: true,
			Summary:  "what a step does to the kernel: syscalls, shell equivalent, man page, undo (CMD: without running it)",
			Kernel:   "nothing: prints the record the primitive wrote for the last step, or its plan of CMD",
			Example:  "explain pivot_root",
			Complete: completeExplain,
			Run:      runExplain,
		},
		&Command{
			Name: "history", Group: "session", Usage: "history", Summary: "the commands that succeeded this session",
			Run: func(sh *Shell, c *Call) error {
				for i, l := range sh.history {
					sh.say("%4d  %s", i+1, step.EscapeControls(l))
				}
				return nil
			},
		},
		&Command{
			Name: "save", Group: "session", Usage: "save FILE", MinArgs: 1, MaxArgs: 1,
			Summary:  "write the successful steps as a script `stepbox run FILE` replays",
			Complete: completePath,
			Run: func(sh *Shell, c *Call) error {
				var b strings.Builder
				b.WriteString("# saved by stepbox: replay with `stepbox run " + c.Args[0] + "`\n")
				for _, l := range sh.history {
					b.WriteString(l + "\n")
				}
				if err := outfile.Write(c.Args[0], []byte(b.String()), 0o600); err != nil {
					return fmt.Errorf("save: %w", err)
				}
				sh.ok("%s written to %s", step.Count(len(sh.history), "step"), c.Args[0])
				return nil
			},
		},
		&Command{
			Name: "source", Group: "session", Usage: "source FILE", MinArgs: 1, MaxArgs: 1,
			Summary:  "run the commands in FILE here, stopping at the first failure",
			Kernel:   fmt.Sprintf("nothing of its own: each line runs as if typed, echoed first; a line starting with '-' may fail, and Ctrl-C stops the script. FILE may source another script, at most %d deep, never itself or a script that sourced it (the same file by device and inode, under any name)", scriptDepthMax),
			Complete: completePath,
			Run: func(sh *Shell, c *Call) error {
				f, err := openScript(c.Args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				return sh.sourceStopped(sh.RunScript(sh.interrupt, f, c.Args[0]))
			},
		},
		&Command{
			Name: "clear", Group: "session", Usage: "clear", Summary: "clear the screen",
			Run: func(sh *Shell, c *Call) error {
				sh.clearScreen()
				return nil
			},
		},
		&Command{
			Name: "exit", Group: "session", Usage: "exit", Summary: "tear every box down and leave",
			Run: func(sh *Shell, c *Call) error {
				sh.exit = true
				return nil
			},
		},
	)
}

func runExplain(sh *Shell, c *Call) error {
	switch {
	case len(c.Args) == 0:
		if sh.lastStep == nil {
			return errors.New("no step has run yet; `explain on` shows the record after each one, `explain CMD…` what CMD would do")
		}
		fmt.Fprintln(sh.Out, viz.StepPanel(sh.lastStep, sh.Width, sh.Theme))
	case len(c.Args) == 1 && c.Args[0] == "on":
		sh.explain = true
		sh.ok("explain is on: every step shows its syscalls, shell equivalent, man page and undo")
	case len(c.Args) == 1 && c.Args[0] == "off":
		sh.explain = false
		sh.ok("explain is off")
	case c.Args[0] == "on" || c.Args[0] == "off":
		return fmt.Errorf("explain %s takes nothing after it: `explain on`, `explain off`, or `explain CMD…` for what CMD would do", c.Args[0])
	case strings.HasPrefix(c.Args[0], "!"):
		// A host command is /bin/sh's, not a primitive's: there is no
		// plan of its syscalls to show.
		return fmt.Errorf("explain %s: a `!` line runs on the host with /bin/sh, so stepbox has no plan of it; explain takes a stepbox command, such as `explain pivot_root` (`help !` says what `!` does)", viz.Escape(clip(c.Args[0])))
	default:
		return sh.explainPlan(c.Args)
	}
	return nil
}

// sourceStopped is what `source` returns of its script's failure. Typed
// at the prompt (no script around it), a script stopped by a line whose
// error was printed at that line says only where it stopped: the prompt
// printed that error a second time in the summary. A Ctrl-C's stop says
// so where it is reported, and a source in a script passes the failure
// up, for the outermost script to name the chain.
func (sh *Shell) sourceStopped(err error) error {
	var se *ScriptError
	if len(sh.scripts) > 0 || !errors.As(err, &se) || !se.shownAtLine() || se.interrupted() {
		return err
	}
	fmt.Fprintln(sh.Err, viz.Hang("", sh.Theme.Warn.Render(printable("script stopped at "+se.Where()+", by the error above")), sh.Width))
	return reportedError{err}
}

// explainPlan prints the record CMD would write, from the primitive's
// plan: nothing runs.
func (sh *Shell) explainPlan(words []string) error {
	cmd, args, err := lookup(words)
	if err != nil {
		return err
	}
	call, err := cmd.parse(args)
	if err != nil {
		return &CommandError{Cmd: cmd.path(), Err: err}
	}
	if cmd.Plan == nil {
		what := "it changes no kernel state of its own"
		if cmd.Kernel != "" {
			what = "the kernel: " + cmd.Kernel
		}
		return fmt.Errorf("%s writes no step record to plan (%s); `help %s` says more", cmd.path(), what, cmd.path())
	}
	if cmd.NeedsBox && sh.Current() == nil {
		return fmt.Errorf("%s works on a box, and there is none yet: `explain new NAME` shows what making one does", cmd.path())
	}
	// A step refused rootless is still explained (ut26 F14): its record
	// when it can be planned, else what it asks of the kernel, then why
	// it is refused here.
	var refused *primitives.RootlessRefusal
	errors.As(primitives.RefuseRootless(cmd.path(), sh.Current()), &refused)
	st, err := cmd.Plan(sh, call)
	if err != nil && refused == nil {
		return &CommandError{Cmd: cmd.path(), Err: err}
	}
	if err == nil {
		st.Command = strings.Join(words, " ")
		fmt.Fprintln(sh.Out, viz.StepPanel(st, sh.Width, sh.Theme))
	} else {
		fmt.Fprintln(sh.Out, viz.Hang(strings.Join(words, " ")+": ", "the kernel: "+cmd.Kernel+" (man "+cmd.Man+"); its full record needs what rootless cannot make: "+err.Error(), sh.Width))
	}
	if refused != nil {
		fmt.Fprintln(sh.Out, viz.Hang("", sh.Theme.Warn.Render("rootless here, "+cmd.path()+" is refused: "+refused.Why+"; do: "+refused.Do), sh.Width))
	}
	return nil
}

// completeExplain offers on, off and the commands that have a plan, then
// completes the command's own arguments.
func completeExplain(sh *Shell, args []string) []Suggestion {
	if len(args) > 1 {
		return sh.Complete(args[:len(args)-1], args[len(args)-1])
	}
	out := []Suggestion{{"on", "show the record after every step"}, {"off", "stop showing it"}}
	for _, c := range commands {
		if planned(c) {
			out = append(out, Suggestion{Text: c.Name, Description: "what " + c.Name + " would do, without running it"})
		}
	}
	return out
}

// planned reports whether c or one of its sub-commands has a plan.
func planned(c *Command) bool {
	if c.Plan != nil {
		return true
	}
	for _, s := range c.Sub {
		if planned(s) {
			return true
		}
	}
	return false
}

// helpLookup finds the command or family the words name: `help image`
// explains the family and lists its sub-commands, where running `image`
// alone asks which one. It is the longest command the words start with,
// as running them would find it: `help cgroup devices allow c 1:3 rwm`
// explains `cgroup devices allow`, whose arguments the rest are.
func helpLookup(words []string) (*Command, error) {
	c := findCommand(commands, words[0])
	if c == nil {
		return nil, unknownCommand(words[0])
	}
	for _, w := range words[1:] {
		if len(c.Sub) == 0 {
			break
		}
		s := findCommand(c.Sub, w)
		if s == nil {
			if c.Run != nil && c.MaxArgs != 0 {
				break
			}
			return nil, unknownSub(c, w)
		}
		c = s
	}
	return c, nil
}

func runHelp(sh *Shell, c *Call) error {
	th := sh.Theme
	if len(c.Args) > 0 {
		if strings.HasPrefix(c.Args[0], "!") {
			sh.say("%s", th.Title.Render("!CMD…"))
			sh.helpLine("", 0, "run CMD on the host with /bin/sh -c, as in `!ls -l /proc/$BOX_PID/ns`: $BOX_PID, $BOX_ROOT, $BOX_UPPER (its overlay's upper dir), $BOX_DIR (its state dir, removed with the session) and $BOX_ID name the current box, and CMD sees the host's namespaces, not the box's", th.Same)
			return nil
		}
		cmd, err := helpLookup(c.Args)
		if err != nil {
			return err
		}
		sh.say("%s", th.Title.Render(cmd.Usage))
		sh.helpLine("", 0, cmd.Summary, th.Same)
		if cmd.Kernel != "" {
			sh.helpLine("kernel:", 8, cmd.Kernel, th.Same)
		}
		for _, f := range cmd.Flags {
			v := ""
			if f.Value != "" {
				v = " " + f.Value
			}
			sh.helpLine("--"+f.Name+v, 16, f.Help, th.Same)
		}
		for _, s := range cmd.Sub {
			sh.helpLine(s.Usage, 28, s.Summary, th.Same)
		}
		if cmd.Example != "" {
			sh.helpLine("example:", 8, cmd.Example, th.Cmd)
		}
		if cmd.Man != "" {
			sh.helpLine("man:", 8, cmd.Man, th.Same)
		}
		return nil
	}
	for _, g := range groups {
		var in []*Command
		for _, cmd := range commands {
			if cmd.Group == g.name {
				in = append(in, cmd)
			}
		}
		if len(in) == 0 {
			continue
		}
		sh.say("%s", th.Title.Render(g.title))
		for _, cmd := range in {
			sh.helpLine(cmd.Usage, 34, cmd.Summary, th.Dim)
		}
	}
	sh.say("%s", th.Title.Render("Host"))
	sh.helpLine("!CMD…", 34, "run CMD on the host with /bin/sh; $BOX_PID and $BOX_ROOT name the current box, $STATE stepbox's state dir", th.Dim)
	sh.say("\n%s", th.Title.Render("The prompt"))
	sh.helpLine("web[uts,pid|pivot|cg] ▸", 34, "box web: its own namespaces (named up to three, then counted: 5 ns), then its root (overlay, pivot or chroot), then cg once it has a cgroup; `status` says it in words", th.Dim)
	sh.say("\n`help CMD` says what the kernel does for CMD.")
	return nil
}

// helpLine prints "  LABEL  TEXT" with TEXT in a column labelWidth wide
// from the label's start, wrapped at words to the terminal's width; a
// longer label puts TEXT on the lines below it.
func (sh *Shell) helpLine(label string, labelWidth int, text string, style lipgloss.Style) {
	indent := 2 + labelWidth
	if labelWidth > 0 {
		indent++
	}
	first := "  " + label
	if len([]rune(label)) > labelWidth {
		sh.say("%s", first)
		first = ""
	}
	for _, l := range strings.Split(viz.Wrap(text, max(sh.Width-indent, 20), ""), "\n") {
		pad := indent - len([]rune(first))
		sh.say("%s%s%s", first, strings.Repeat(" ", pad), style.Render(l))
		first = ""
	}
}

func completePath(sh *Shell, args []string) []Suggestion {
	if len(args) > 1 {
		return nil
	}
	word := ""
	if len(args) == 1 {
		word = args[0]
	}
	dir, base := filepath.Split(word)
	lookIn := dir
	if lookIn == "" {
		lookIn = "."
	}
	ents, err := os.ReadDir(lookIn)
	if err != nil {
		return nil
	}
	var out []Suggestion
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), base) || strings.HasPrefix(e.Name(), ".") && !strings.HasPrefix(base, ".") {
			continue
		}
		name := dir + e.Name()
		desc := "file"
		if e.IsDir() {
			name += "/"
			desc = "directory"
		}
		out = append(out, Suggestion{Text: name, Description: desc})
		if len(out) == 50 {
			break
		}
	}
	return out
}

// echoPrompt is the prompt shown before an echoed script command.
func (sh *Shell) echoPrompt() string {
	p := sh.Prompt()
	if sh.Theme.Plain {
		p = strings.ReplaceAll(p, "▸", ">")
	}
	return p
}

// echoLine is a script's (or a recorded) command line as echoed before
// its output: the prompt, then the line with its control characters
// escaped, as error messages show them; a raw CR would let the line
// shown be another than the one run, an ESC retitle the terminal.
func (sh *Shell) echoLine(line string) string {
	return sh.Theme.Cmd.Render(sh.echoPrompt() + step.EscapeControls(line))
}
