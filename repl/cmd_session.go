package repl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"stepbox/viz"
)

// groups orders `help`.
var groups = []struct{ name, title string }{
	{"box", "Boxes"},
	{"namespaces", "Namespaces"},
	{"filesystem", "Filesystem"},
	{"cgroups", "cgroups"},
	{"processes", "Processes"},
	{"lessons", "Lessons"},
	{"session", "Session"},
}

func init() {
	register(
		&Command{
			Name: "help", Group: "session", Usage: "help [CMD]", MaxArgs: 2,
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
			Name: "explain", Group: "session", Usage: "explain [on|off]", MaxArgs: 1,
			Summary: "show what each step did to the kernel: syscalls, shell equivalent, man page, undo",
			Kernel:  "nothing: prints the record stepbox keeps of each step",
			Example: "explain on",
			Complete: func(sh *Shell, args []string) []Suggestion {
				return []Suggestion{{"on", "show the record after every step"}, {"off", "stop showing it"}}
			},
			Run: func(sh *Shell, c *Call) error {
				if len(c.Args) == 0 {
					if sh.lastStep == nil {
						return errors.New("no step has run yet; `explain on` shows the record after each one")
					}
					fmt.Fprintln(sh.Out, viz.StepPanel(sh.lastStep, sh.Width, sh.Theme))
					return nil
				}
				switch c.Args[0] {
				case "on":
					sh.explain = true
					sh.ok("explain is on: every step shows its syscalls, shell equivalent, man page and undo")
				case "off":
					sh.explain = false
					sh.ok("explain is off")
				default:
					return fmt.Errorf("%q: use on or off, or no argument for the last step's record", c.Args[0])
				}
				return nil
			},
		},
		&Command{
			Name: "history", Group: "session", Usage: "history", Summary: "the commands that succeeded this session",
			Run: func(sh *Shell, c *Call) error {
				for i, l := range sh.history {
					sh.say("%4d  %s", i+1, l)
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
				if err := os.WriteFile(c.Args[0], []byte(b.String()), 0o644); err != nil {
					return err
				}
				sh.ok("%d step(s) written to %s", len(sh.history), c.Args[0])
				return nil
			},
		},
		&Command{
			Name: "source", Group: "session", Usage: "source FILE", MinArgs: 1, MaxArgs: 1,
			Summary:  "run the commands in FILE here, stopping at the first failure",
			Complete: completePath,
			Run: func(sh *Shell, c *Call) error {
				f, err := os.Open(c.Args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				return sh.RunScript(sh.interrupt, f, c.Args[0])
			},
		},
		&Command{
			Name: "clear", Group: "session", Usage: "clear", Summary: "clear the screen",
			Run: func(sh *Shell, c *Call) error {
				if sh.Terminal != nil && !sh.Theme.Plain {
					fmt.Fprint(sh.Out, "\x1b[H\x1b[2J")
				}
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

func runHelp(sh *Shell, c *Call) error {
	th := sh.Theme
	if len(c.Args) > 0 {
		cmd, _, err := lookup(c.Args)
		if err != nil {
			return err
		}
		sh.say("%s", th.Title.Render(cmd.Usage))
		sh.say("  %s", cmd.Summary)
		if cmd.Kernel != "" {
			sh.say("  kernel:  %s", cmd.Kernel)
		}
		for _, f := range cmd.Flags {
			v := ""
			if f.Value != "" {
				v = " " + f.Value
			}
			sh.say("  --%s%s  %s", f.Name, v, f.Help)
		}
		for _, s := range cmd.Sub {
			sh.say("  %-28s %s", s.Usage, s.Summary)
		}
		if cmd.Example != "" {
			sh.say("  example: %s", cmd.Example)
		}
		if cmd.Man != "" {
			sh.say("  man:     %s", cmd.Man)
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
			sh.say("  %-34s %s", cmd.Usage, th.Dim.Render(cmd.Summary))
		}
	}
	sh.say("%s", th.Title.Render("Host"))
	sh.say("  %-34s %s", "!CMD…", th.Dim.Render("run CMD on the host with /bin/sh; $BOX_PID and $BOX_ROOT name the current box"))
	sh.say("\n`help CMD` says what the kernel does for CMD.")
	return nil
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

// RunScript runs commands from r, echoing each before its output. It stops
// at the first failure, unless the line starts with '-' (as in make).
func (sh *Shell) RunScript(ctx context.Context, r *os.File, name string) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		tolerate := false
		if rest, ok := strings.CutPrefix(line, "-"); ok {
			tolerate, line = true, strings.TrimSpace(rest)
		}
		fmt.Fprintln(sh.Out, sh.Theme.Cmd.Render(sh.echoPrompt()+line))
		err := sh.Execute(ctx, line)
		if err != nil {
			fmt.Fprintln(sh.Err, sh.Theme.Bad.Render("error:")+" "+err.Error())
			if !tolerate {
				return &ScriptError{File: name, Line: n, Err: err}
			}
		}
		if sh.exit {
			return nil
		}
		if ctx.Err() != nil {
			return &ScriptError{File: name, Line: n, Err: ctx.Err()}
		}
	}
	return sc.Err()
}

// echoPrompt is the prompt shown before an echoed script command.
func (sh *Shell) echoPrompt() string {
	p := sh.Prompt()
	if sh.Theme.Plain {
		p = strings.ReplaceAll(p, "▸", ">")
	}
	return p
}

// ScriptError is the failure that stopped a script.
type ScriptError struct {
	File string
	Line int
	Err  error
}

func (e *ScriptError) Error() string {
	return fmt.Sprintf("%s:%d: stopped: %v", e.File, e.Line, e.Err)
}

func (e *ScriptError) Unwrap() error { return e.Err }
