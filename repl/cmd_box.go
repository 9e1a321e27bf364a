package repl

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"stepbox/primitives"
	"stepbox/primitives/step"
	"stepbox/viz"
)

func init() {
	register(
		&Command{
			Name: "new", Group: "box", Usage: "new [NAME] [--user]", MaxArgs: 1, Recorded: true,
			Summary: "start a box: a process that will apply your steps",
			Kernel:  "clone(2) and execve(2) start stepbox's executor, one thread of C that performs each step; with --user, clone(CLONE_NEWUSER) gives it a user namespace of its own, with uid 0 inside mapped to your uid outside",
			Example: "new web", Man: "clone(2), user_namespaces(7)",
			Flags: []Flag{{Name: "user", Help: "start in a new user namespace (the only moment one can be made); rootless, every box does"}},
			Run:   runNew,
			Plan: func(sh *Shell, c *Call) (*step.Step, error) {
				return sh.Session.PlanNew(sh.newBoxName(c), c.Has("user"))
			},
		},
		&Command{
			Name: "boxes", Group: "box", Usage: "boxes", Summary: "list the boxes, like `docker ps`",
			Kernel: "reads /proc for each box's processes, and its hostname with uname(2) inside its UTS namespace", Example: "boxes", Man: "proc(5)",
			Run: func(sh *Shell, c *Call) error {
				var rows []viz.BoxRow
				var frozen []string
				for _, b := range sh.Session.Boxes() {
					if b == nil {
						continue
					}
					state := "running"
					var silent *primitives.BoxSilentError
					err := b.Alive()
					switch {
					case errors.As(err, &silent) && silent.Stopped != "":
						state = "stopped" // given up, not exited: `rm` ends it
					case errors.As(err, &silent) && silent.Frozen != "":
						// Given up, its processes alive: the file that says
						// so names a cgroup the box may have made (printable
						// escapes it).
						state = "frozen"
						frozen = append(frozen, fmt.Sprintf("! box %s is frozen: %s; it takes no more steps, and `rm %s` thaws it and ends everything in it",
							b.Name, silent.Frozen, b.Name))
					case err != nil:
						state = "exited"
					}
					cg := ""
					if g := b.Cgroup(); g != nil {
						cg = g.Name
					}
					rows = append(rows, viz.BoxRow{
						Current: b.Name == sh.current, Name: b.Name, ID: b.ID, PID: b.PID(), InitPID: b.InitPID(),
						Namespaces: b.Unshared(), Root: rootStage(b.FS()), Cgroup: cg,
						Hostname: boxHostname(b, state), Created: b.Created, State: state,
					})
				}
				fmt.Fprintln(sh.Out, viz.BoxesPanel(rows, sh.Width, sh.Theme))
				for _, f := range frozen {
					sh.say("%s", sh.Theme.Warn.Render(printable(f)))
				}
				return nil
			},
		},
		&Command{
			Name: "use", Group: "box", Usage: "use NAME", MinArgs: 1, MaxArgs: 1, Recorded: true,
			Summary: "make another box the current one", Kernel: "nothing: stepbox only changes which box later steps apply to",
			Example: "use db", Man: "namespaces(7)", Complete: completeBoxes,
			Run: func(sh *Shell, c *Call) error {
				if _, err := sh.boxNamed(c.Args[0]); err != nil {
					return err
				}
				sh.current = c.Args[0]
				sh.ok("box %s is current", c.Args[0])
				return nil
			},
		},
		&Command{
			Name: "rm", Group: "box", Usage: "rm [NAME]", MaxArgs: 1, Recorded: true,
			Summary: "tear a box down: its processes, mounts, cgroups and files",
			Kernel:  "kill(2) ends the box's processes; each namespace, and every mount in the box's mount namespace, is freed with its last process; cgroups are removed with rmdir(2)",
			Example: "rm web", Man: "kill(2), namespaces(7)", Complete: completeBoxes,
			Run: func(sh *Shell, c *Call) error {
				name := sh.current
				if len(c.Args) == 1 {
					name = c.Args[0]
				}
				if name == "" {
					return fmt.Errorf("there is no box to remove")
				}
				b, err := sh.boxNamed(name)
				if err != nil {
					return err
				}
				escape := b.CouldEscape()
				// The box is gone even where its teardown says what it
				// could not undo, or what it found and ended.
				err = sh.Session.Remove(name)
				if name == sh.current {
					sh.current = ""
					if bs := sh.Session.Boxes(); len(bs) > 0 {
						sh.current = bs[len(bs)-1].Name
					}
				}
				if err != nil {
					if escape {
						return fmt.Errorf("%w; %s", err, unfound)
					}
					return err
				}
				if escape {
					sh.ok("%s", removedUnfound(name))
					return nil
				}
				sh.ok("box %s removed: its processes ended, its namespaces and mounts went with them", name)
				return nil
			},
		},
		&Command{
			Name: "reset", Group: "box", Usage: "reset", Recorded: true,
			Summary: "tear down every box", Kernel: "the teardown of `rm`, for each box, newest first",
			Example: "reset", Man: "kill(2), namespaces(7)",
			Run: func(sh *Shell, c *Call) error {
				n := len(sh.Session.Boxes())
				escape := sh.escapers()
				err := sh.Session.Reset()
				sh.current = ""
				sh.lastCgroup = nil
				notes := unfoundNotes(escape, err)
				if err != nil {
					if len(notes) > 0 {
						return fmt.Errorf("%w; %s", err, strings.Join(notes, "; "))
					}
					return err
				}
				sh.ok("%s removed", step.Count(n, "box"))
				for _, note := range notes {
					sh.ok("%s", note)
				}
				return nil
			},
		},
	)
}

// newBoxName is the name `new` gives: the one asked for, or the first
// free box1, box2…
func (sh *Shell) newBoxName(c *Call) string {
	if len(c.Args) == 1 {
		return c.Args[0]
	}
	for i := 1; ; i++ {
		name := fmt.Sprintf("box%d", i)
		if _, err := sh.Session.Box(name); err != nil {
			return name
		}
	}
}

func runNew(sh *Shell, c *Call) error {
	name := sh.newBoxName(c)
	b, st, err := sh.Session.NewBox(name, c.Has("user"))
	if err != nil {
		return err
	}
	sh.current = name
	sh.printStep(st)
	where := "in the host's namespaces: nothing is isolated yet"
	if b.User {
		where = "in a new user namespace (uid 0 inside is your uid outside); every other namespace is still the host's"
		if m, err := b.UIDMap(); err == nil && len(m) == 1 && os.Geteuid() == 0 {
			where = fmt.Sprintf("in a new user namespace (uid 0 inside is host uid %d outside, nobody there: a block of %d IDs no other box maps); every other namespace is still the host's", m[0].Outside, m[0].Count)
		}
		if primitives.Rootless() && !c.Has("user") {
			where += " (rootless, every box gets one)"
		}
	}
	sh.ok("box %s (id %s): box process PID %d, %s", name, b.ID, b.PID(), where)
	return nil
}

func completeBoxes(sh *Shell, args []string) []Suggestion {
	if len(args) > 1 {
		return nil
	}
	var out []Suggestion
	for _, b := range sh.Session.Boxes() {
		if b != nil {
			out = append(out, Suggestion{Text: b.Name, Description: fmt.Sprintf("box %s, PID %d", b.ID, b.PID())})
		}
	}
	return out
}

// boxHostname is the hostname the box's UTS namespace holds now, read
// inside it (uname(2) by its executor), so that a name the box set
// itself (`exec hostname NAME`, a write to /proc/sys/kernel/hostname)
// shows, not the one `hostname` last set; "" for a box in the host's UTS
// namespace or one that no longer runs, "?" when the read failed. The
// table escapes it: the box chose its bytes.
func boxHostname(b *primitives.Box, state string) string {
	if state != "running" || !b.Has("uts") {
		return ""
	}
	u, err := b.UTSName()
	if err != nil {
		return "?"
	}
	return u.Box
}

// unfound is what a teardown of a box that could have escaped tracking
// (Box.CouldEscape) adds: it says what it checked, not more (issue 15
// item 3): what it found is ended and named; what left every place it
// looks is not found.
const unfound = "it ran a command as host root outside a PID namespace of its own, so one that left stepbox's cgroups, cleared its markers, " +
	"and joined the host's namespaces again (setns(2)) with its root off the box's overlay would not be found"

// removedUnfound is what `rm`, `reset` and the session's end say of box
// name, torn down, that could have escaped tracking.
func removedUnfound(name string) string {
	return "box " + name + " removed: every process of it that stepbox found (in its cgroups, with its markers, in its namespaces, or with its root on its overlay) ended; " + unfound
}

// escapers names the session's boxes that could have escaped tracking,
// newest first, as teardown goes; read before a teardown, which forgets
// them.
func (sh *Shell) escapers() []string {
	var names []string
	bs := sh.Session.Boxes()
	for i := len(bs) - 1; i >= 0; i-- {
		if bs[i].CouldEscape() {
			names = append(names, bs[i].Name)
		}
	}
	return names
}

// unfoundNotes is, for each box of names torn down, what rm says of it:
// removedUnfound where the teardown succeeded, the caveat alone where it
// failed (its error says what was not undone). Every way a session ends
// says it, not only `rm` (ut33 F2).
func unfoundNotes(names []string, err error) []string {
	notes := make([]string, 0, len(names))
	for _, n := range names {
		if err != nil {
			notes = append(notes, printable("box "+n+": "+unfound))
		} else {
			notes = append(notes, printable(removedUnfound(n)))
		}
	}
	return notes
}
