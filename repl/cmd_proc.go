package repl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"stepbox/primitives"
	"stepbox/primitives/network"
	"stepbox/primitives/step"
	"stepbox/viz"
)

func init() {
	register(
		&Command{
			Name: "exec", Group: "processes", Usage: "exec [CMD [ARG…]]", MaxArgs: -1, RawArgs: true, NeedsBox: true, Recorded: true,
			Summary: "run a command inside the box and show its output",
			Kernel:  "the box's PID 1 (or box process) forks; the child calls setsid(2), a session of its own without a controlling terminal, and execve(2)s the command: it inherits every namespace and the root the steps made, and its parent's cgroup: stepbox's tracking cgroup of the box from `new`, the box's own once `cgroup attach` moved the parent there. Its stdout and stderr are pipes stepbox prints from, its stdin /dev/null: never your terminal",
			Example: "exec sh -c 'echo $$; hostname'", Man: "execve(2)",
			Plan: func(sh *Shell, c *Call) (*step.Step, error) {
				argv, err := sh.execArgv(c.Args)
				if err != nil {
					return nil, err
				}
				return sh.Current().PlanExec(argv)
			},
			Run: func(sh *Shell, c *Call) error {
				b := sh.Current()
				argv, err := sh.execArgv(c.Args)
				if err != nil {
					return err
				}
				if why := sh.needsTerminal(argv); why != "" {
					return errors.New(why)
				}
				sh.warnHostRoot(b, true)
				if note := stdinNote("exec", argv); note != "" && sh.Terminal != nil {
					sh.say("%s", sh.dim(note))
				}
				before := sh.cgroupEvents(b)
				out, errw, flush := sh.boxStdio()
				// The end of what it wrote to stderr goes to the explainer:
				// "bind: Permission denied" names the step it still lacks.
				said := &tailBuffer{}
				ipc := hostIPC(b)
				std := primitives.Stdio{Out: out, Err: io.MultiWriter(errw, said)}
				if primitives.SameWriter(out, errw) {
					// One writer for both streams (a transcript, a test's
					// buffer): one pipe, so that the two never write into
					// it at once; the tail then holds stdout too.
					w := io.MultiWriter(out, said)
					std = primitives.Stdio{Out: w, Err: w}
				}
				sh.watchStopped(&std, "exec "+argv[0])
				es, err := b.Exec(sh.interrupt, argv, nil, std)
				flush()
				sh.sayHostIPC(b, ipc)
				sh.printStep(es.Step)
				if err != nil && !strings.Contains(argv[0], "/") && strings.Contains(err.Error(), "command not found in the box") {
					return fmt.Errorf("%w%s", err, didYouMean(argv[0], b.Programs()))
				}
				if err != nil {
					return err
				}
				if es.Code != 0 {
					ee := &ExitError{Cmd: "exec " + argv[0], Status: es, Hits: sh.cgroupEvents(b).since(before), Stderr: said.String()}
					if sh.interrupt.Err() != nil {
						ee.Interrupted = "SIGINT"
					}
					return ee
				}
				return nil
			},
		},
		&Command{
			Name: "sh", Group: "processes", Usage: "sh", NeedsBox: true,
			Summary: "an interactive shell inside the box, like `docker run -it`; `exit` comes back",
			Kernel:  "as exec, but stepbox opens a pty pair (/dev/ptmx): the shell gets the slave as fds 0-2 and, after setsid(2), as its controlling terminal (ioctl TIOCSCTTY), so it has job control (Ctrl-Z, fg); stepbox relays the master to your terminal in raw mode, passes its window size on (TIOCSWINSZ) and closes the master when the shell exits. Ctrl-P Ctrl-Q (docker's detach keys) is stepbox's, never the box's: it kills the shell's process group (SIGKILL) and comes back, even from a program that set its terminal raw and ignores every signal; a Ctrl-P not followed by Ctrl-Q still reaches the box. Nothing in the box ever holds your terminal: it cannot resize it, read what you type at stepbox's prompt or push keys into it (TIOCSTI)",
			Example: "sh", Man: "pty(7), setsid(2), ioctl_tty(2)",
			Plan: func(sh *Shell, c *Call) (*step.Step, error) { return sh.Current().PlanExecTerminal([]string{"sh"}) },
			Run: func(sh *Shell, c *Call) error {
				b := sh.Current()
				if sh.Terminal == nil {
					return errors.New("needs a terminal: stepbox is reading commands from a script or pipe; use `exec CMD` instead")
				}
				sh.warnHostRoot(b, false)
				sh.handOver(fmt.Sprintf("a shell in box %s, in everything the steps gave it", b.Name))
				sh.handTerminal()
				// $PWD, not \w: dash (the host's sh before pivot_root) expands only
				// parameters in PS1; busybox ash does both.
				prompt := fmt.Sprintf("PS1=[%s] $PWD # ", b.Name)
				// A terminal of its own, relayed: the learner's is raw meanwhile,
				// so Ctrl-C and Ctrl-Z are the box terminal's to turn into signals.
				es, err := b.Exec(context.Background(), []string{"sh"}, []string{prompt}, primitives.Stdio{Terminal: sh.Terminal})
				sh.Terminal.Restore()
				if err != nil {
					return err
				}
				sh.backFromShell("shell", es)
				return nil
			},
		},
		&Command{
			Name: "enter", Group: "processes", Usage: "enter [TYPE…] [-- CMD…]", MaxArgs: -1, RawArgs: true, NeedsBox: true,
			Summary: "join the box's namespaces from the host, like `nsenter -t PID`",
			Kernel:  "a new process writes itself into the cgroups the box's processes are in (stepbox's tracking cgroup of the box, and the box's own once `cgroup attach` moved them there), opens /proc/PID/ns/* and calls setns(2) for each (the box's user namespace always, when it has one, and then all its namespaces of its own: uts ipc net mnt cgroup pid and time, whose clocks are the ones its commands read, time_for_children), then forks the command, which calls setsid(2); with the mnt namespace it takes the box's root as nsenter --root does, fchdir(2) to /proc/PID/root (opened with the namespace files) and chroot(\".\"), since setns(2) leaves it at the namespace's root, the host's files after `chroot`, and, once an image's overlay is the box's / (pivot_root or chroot), chdir(2) to the image's WorkingDir inside the box, made there first if missing, as exec does: a shell gets a pty of its own as its controlling terminal (TIOCSCTTY), relayed by stepbox; a command given after -- writes through pipes and reads /dev/null, never your terminal and gets the box's capabilities, no_new_privs and seccomp filter before execve(2), as docker exec does",
			Example: "enter mnt pid uts -- /bin/sh -c hostname", Man: "setns(2), nsenter(1)",
			Complete: completeEnter,
			Run:      runEnter,
			Plan: func(sh *Shell, c *Call) (*step.Step, error) {
				types, argv, err := enterRequest(sh.Current(), c.Args)
				if err != nil {
					return nil, err
				}
				return sh.Current().PlanEnter(types, argv)
			},
		},
		&Command{
			Name: "ps", Group: "processes", Usage: "ps",
			Summary: "the process tree: session → box process → PID 1 → …, with box PIDs",
			Kernel:  "reads /proc/PID/stat and the NSpid line of /proc/PID/status: one PID per nested PID namespace",
			Example: "ps", Man: "proc(5), pid_namespaces(7)",
			Run: func(sh *Shell, c *Call) error {
				root, err := sh.Session.ProcessTree()
				if err != nil {
					return err
				}
				fmt.Fprintln(sh.Out, viz.ProcessPanel(root, sh.Width, sh.Theme))
				// A gone box has no process in the tree (ProcessTree): say why.
				for _, b := range sh.Session.Boxes() {
					var gone *primitives.BoxGoneError
					if b != nil && errors.As(b.Alive(), &gone) {
						sh.say("%s", sh.Theme.Warn.Render("! "+gone.Error()))
					}
				}
				return nil
			},
		},
	)
}

// warnHostRoot says, in one line, that a command run in box b acts on
// the host's own files and mounts: the box shares the host's mount
// namespace and root, and runs as root. mount and hostname refuse there;
// exec and sh go ahead (lesson 1 runs them in the host's namespaces on
// purpose) but say so: sh every time, exec once per box (once is read,
// every line is not).
func (sh *Shell) warnHostRoot(b *primitives.Box, once bool) {
	if f := b.FS(); b.Has("mnt") || f.Pivoted || f.Chrooted || (once && sh.hostRootWarned[b.ID]) {
		return
	}
	if sh.hostRootWarned == nil {
		sh.hostRootWarned = map[string]bool{}
	}
	sh.hostRootWarned[b.ID] = true
	sh.say("%s", sh.Theme.Warn.Render(fmt.Sprintf("! box %s shares the host's root and mounts: it acts on the host's files", b.Name)))
}

func runEnter(sh *Shell, c *Call) error {
	b := sh.Current()
	types, argv, err := enterRequest(b, c.Args)
	if err != nil {
		return err
	}
	out, errw, flush := sh.boxStdio()
	std := primitives.Stdio{Out: out, Err: errw}
	if sh.Terminal == nil && !slices.Contains(c.Args, "--") {
		return errors.New("needs a terminal for its interactive shell: stepbox is reading commands from a script or pipe; give a command, as in `enter uts -- hostname`")
	}
	// A shell given no command, or a program that draws the screen, gets
	// a terminal of its own (docker exec -it); any other command pipes
	// and no stdin (docker exec).
	_, fullScreenProgram := fullScreen[filepath.Base(argv[0])]
	interactive := sh.Terminal != nil && (interactiveShell(argv) || fullScreenProgram)
	if sh.Terminal != nil {
		if interactive {
			// What Box.Enter joins, not only what was asked: the box's
			// user namespace brings every namespace of its own.
			names, cgroup := b.EnterJoins(types)
			// With the mount namespace goes the box's root: after
			// `chroot` it is not the namespace's (Box.Enter).
			joined, as := "", "nsenter"
			if slices.Contains(names, "mnt") {
				joined, as = " and root", "nsenter --root"
			}
			sh.handOver(fmt.Sprintf("%s in box %s's %s %s%s, joined from the host as %s does%s; %s", argv[0], b.Name, strings.Join(names, ", "), step.Plural(len(names), "namespace"), joined, as, userBrings(b), enterIdentity(b, cgroup)))
		}
		sh.handTerminal()
		if interactive {
			std = primitives.Stdio{Terminal: sh.Terminal}
		} else if note := stdinNote("enter", argv); note != "" {
			sh.say("%s", sh.dim(note))
		}
	}
	ctx := sh.interrupt
	done := func() {}
	var sigs <-chan os.Signal
	if sh.Terminal != nil {
		// The enter process is in stepbox's process group: the terminal's
		// Ctrl-C reaches it, and it passes it on to the command (setsid).
		// Stepbox lets it. With a terminal of its own, the learner's is
		// raw: Ctrl-C is a key the box's terminal turns into SIGINT.
		ctx = context.Background()
		if !interactive {
			sigs, done = sh.forwardSignals()
		}
	}
	if !interactive {
		// Box.Enter ends the command on the terminal's Ctrl-C (a stopped
		// one too) and says which signal it took (ExitStatus.PassedOn).
		std.Signals = sigs
		sh.watchStopped(&std, "enter "+argv[0])
	}
	es, st, err := b.Enter(ctx, types, argv, std)
	flush()
	done()
	if sh.Terminal != nil {
		sh.Terminal.Restore()
	}
	sh.printStep(st)
	if err != nil {
		return err
	}
	if interactive {
		name := filepath.Base(argv[0]) // a full-screen program (vi)
		if interactiveShell(argv) {
			name = "shell"
		}
		sh.backFromShell(name, es)
		return nil
	}
	if es.Code != 0 {
		ee := &ExitError{Cmd: "enter " + filepath.Base(argv[0]), Status: es}
		select {
		case s := <-sigs: // the terminal's Ctrl-C, passed on to the command
			if sig, ok := s.(syscall.Signal); ok {
				ee.Interrupted = unix.SignalName(sig)
			}
		default:
			switch {
			case ctx.Err() != nil:
				ee.Interrupted = "SIGINT"
			case es.PassedOn != "":
				// The enter process got the terminal's signal and passed it
				// on before the session read its own copy (a slow machine).
				ee.Interrupted = es.PassedOn
			}
		}
		return ee
	}
	return nil
}

// boxStdio is where a box command writes, through pipes: stdio, with
// the live view's tail beside it. Where stdio reaches a terminal (or a
// recording), what the box writes passes primitives.TerminalFilter first:
// text and colours, never a query the terminal would answer into
// stepbox's prompt, nor a title or a mode. A transcript (a file or pipe)
// is filtered the same way: a terminal shows it later, and a box's bytes
// must not reach that terminal raw either (ut31 F2). The filter sits
// here, above the recording's and the live view's tees, because below
// them the writer is no longer the terminal's file that Box.Exec would
// know to filter. One terminal or file for both streams: one writer, so
// one pipe, in the order the box wrote. done flushes the filters once
// the command's output has been copied.
func (sh *Shell) boxStdio() (out, errw io.Writer, done func()) {
	out, errw = sh.Out, sh.Err
	var filters []*primitives.TerminalFilter
	filter := func(w io.Writer, tty bool) io.Writer {
		f := primitives.NewTranscriptFilter(w)
		if tty {
			f = primitives.NewTerminalFilter(w)
		}
		filters = append(filters, f)
		return f
	}
	if sh.outTTY || sh.outFile {
		out = filter(out, sh.outTTY)
	}
	switch {
	case sh.oneTTY, sh.oneFile:
		errw = out
	case sh.errTTY || sh.errFile:
		errw = filter(errw, sh.errTTY)
	}
	// The live view escapes what it shows (viz.OutputHTML): it gets the
	// box's bytes as written.
	if sh.web != nil {
		if primitives.SameWriter(out, errw) {
			out = io.MultiWriter(out, &sh.web.output)
			errw = out
		} else {
			out, errw = io.MultiWriter(out, &sh.web.output), io.MultiWriter(errw, &sh.web.output)
		}
	}
	return out, errw, func() {
		for _, f := range filters {
			f.Close()
		}
	}
}

// backFromShell says how a command relayed on a terminal of its own
// ended: a ✓ only for a clean exit.
func (sh *Shell) backFromShell(name string, es primitives.ExitStatus) {
	switch {
	case es.Detached:
		sh.say("%s", sh.Theme.Warn.Render("! back in stepbox: "+primitives.DetachKeys+" killed the box's "+name+" (SIGKILL to its process group)"))
	case es.Code == 0:
		sh.ok("back in stepbox (the %s exited with status 0)", name)
	case es.Signal != "":
		sh.say("%s", sh.Theme.Warn.Render(fmt.Sprintf("! back in stepbox: the box's %s was killed by %s", name, es.Signal)))
	default:
		// An exit, whatever its code: a shell left with Ctrl-D after a
		// Ctrl-C'd command exits with that command's status, 130, and
		// was killed by nothing (es.Signal is the command's own wait
		// status, never read from 128+N).
		sh.say("%s", sh.Theme.Warn.Render(fmt.Sprintf("! back in stepbox: the box's %s exited with status %d", name, es.Code)))
	}
}

// enterIdentity says what the entered command gets of the box besides
// its namespaces, as `docker exec` gives it the container's.
func enterIdentity(b *primitives.Box, cgroup string) string {
	who := ""
	if ids := b.CommandIDs(); ids != nil {
		who = fmt.Sprintf(" as the image's User (uid %d, gid %d)", ids.UID, ids.GID)
	}
	return "in " + cgroup + ", with the box's capabilities, no_new_privs and seccomp settings" + who + ", as docker exec does, never the host's"
}

// userBrings says why `enter` joins namespaces that were not asked for:
// the box's user namespace, always joined, brings every one of the box's
// own (Box.Enter), so that its identity never sits in one of the host's.
func userBrings(b *primitives.Box) string {
	if !b.Has("user") {
		return ""
	}
	return " (the box's user namespace is always joined, and with it every namespace of the box's own: its identity never sits in one of the host's)"
}

// enterRequest reads `enter [TYPE…] [-- CMD…]` for box b: the namespaces
// to join (by default every one it has, user joined by Box.Enter) and
// the command (by default /bin/sh).
func enterRequest(b *primitives.Box, args []string) ([]primitives.NamespaceType, []string, error) {
	var types []primitives.NamespaceType
	argv := []string{"/bin/sh"}
	for i, a := range args {
		if a == "--" {
			if rest := args[i+1:]; len(rest) > 0 {
				argv = rest
			}
			break
		}
		t, err := lookupNamespace(a)
		if err != nil {
			return nil, nil, err
		}
		if !b.Has(t.Name) {
			has := strings.Join(b.Unshared(), " ")
			if has == "" {
				has = "none yet"
			}
			return nil, nil, fmt.Errorf("box %s has no %s namespace of its own to join (it shares the host's); its own: %s", b.Name, t.Name, has)
		}
		types = append(types, t)
	}
	if len(types) == 0 {
		for _, t := range primitives.NamespaceTypes {
			// Every one, time too, as docker exec and `nsenter -a`: a
			// command entered reads the box's clocks as exec's do. The
			// box's user namespace is always joined (Box.Enter).
			if b.Has(t.Name) && t.Name != "user" {
				types = append(types, t)
			}
		}
	}
	if len(types) == 0 && !b.Has("user") {
		return nil, nil, fmt.Errorf("box %s has no namespaces of its own yet: `unshare` some first", b.Name)
	}
	return types, argv, nil
}

func completeEnter(sh *Shell, args []string) []Suggestion {
	b := sh.Current()
	if b == nil {
		return nil
	}
	for _, a := range args {
		if a == "--" {
			return nil
		}
	}
	var out []Suggestion
	for _, t := range primitives.NamespaceTypes {
		if b.Has(t.Name) && t.Name != "user" {
			out = append(out, Suggestion{Text: t.Name, Description: "join its " + t.Name + " namespace (" + t.Short + ")"})
		}
	}
	return append(out, Suggestion{Text: "--", Description: "then the command to run (default /bin/sh)"})
}

// hostCommand runs `!CMD…` on the host with /bin/sh, with $BOX_PID and
// $BOX_ROOT set for the current box.
func (sh *Shell) hostCommand(ctx context.Context, line string) error {
	line = strings.TrimSpace(line)
	if line == "" {
		return &CommandError{Cmd: "!", Err: errors.New("give a host command after '!', e.g. !ls -l /proc/$BOX_PID/ns")}
	}
	if err := sh.refuseBoxSymlinks(line); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", line)
	if ns := os.Getenv(network.HostNSEnv); ns != "" {
		// The host side of the network steps is another namespace: host
		// commands (a wget of a published port) run there too.
		cmd = exec.CommandContext(ctx, "nsenter", "--net="+ns, "/bin/sh", "-c", line)
	}
	// Marked as the session's: what it leaves running (a `sleep &`, an
	// nsenter into a box) ends with the session, and the sweep finds it
	// after a crash.
	cmd.Env = os.Environ()
	if sh.Session != nil {
		cmd.Env = append(cmd.Env, sh.Session.MarkerEnv()...)
	}
	for k, v := range sh.boxVars() {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	said := &tailBuffer{}
	out, errw := sh.stdio()
	cmd.Stdout, cmd.Stderr = out, errw
	if firstWord(line) == "nsenter" {
		// The end of what it wrote to stderr goes to the explainer, as
		// exec's does: nsenter's "reassociate … Operation not permitted".
		// Only for nsenter: a tee is a pipe, which a background child
		// (`!sh -c 'sleep 300 &'`) would hold open, where the terminal's
		// own descriptor is not waited for.
		cmd.Stderr = io.MultiWriter(errw, said)
		if primitives.SameWriter(out, errw) {
			cmd.Stdout = io.MultiWriter(out, said)
			cmd.Stderr = cmd.Stdout
		}
	}
	if sh.Terminal != nil {
		cmd.Stdin = sh.Terminal.File
		sh.handTerminal()
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	// A background child of the command may keep the output open.
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if errors.Is(err, exec.ErrWaitDelay) {
		// It exited with status 0; a background child of it still held
		// the output pipe, which is closed now.
		err = nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		es := primitives.ExitStatus{Code: ee.ExitCode()}
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			// Ctrl-C: reported as exec reports it, not as exit status -1.
			es = primitives.ExitStatus{Code: 128 + int(ws.Signal()), Signal: unix.SignalName(ws.Signal())}
		}
		return &ExitError{Cmd: "!" + firstWord(line), Status: es, Stderr: said.String()}
	}
	if err != nil {
		return &CommandError{Cmd: "!", Err: err}
	}
	return nil
}

// stoppedEnd is how long a command of exec or enter may stay stopped in
// a session without a terminal (`stepbox run`, `run -` from a pipe,
// `lesson check`, demo) before stepbox ends it: nobody there can press
// Ctrl-C, and the run waited for ever (ut34 F4). Five seconds lets a
// command that is stopped and continued by design (a job-control test, a
// box process that sends SIGCONT a moment later) go on, past the notice's
// second, and still fails a CI run within seconds, not at its timeout.
const stoppedEnd = 5 * time.Second

// watchStopped sets std to say, once, that the command (what: "exec
// CMD", "enter CMD") is stopped, and, without a terminal, to end it once
// it has stayed so for stoppedEnd.
func (sh *Shell) watchStopped(std *primitives.Stdio, what string) {
	std.Stopped = sh.sayStopped(what)
	if sh.Terminal == nil {
		std.EndStopped = stoppedEnd
	}
}

// sayStopped is the notice for a box command (what: "exec CMD", "enter
// CMD") seen stopped while stepbox waits for it: without it the session
// just looks hung (ut33 F3). Called once, from the watch's goroutine.
// While stepbox waits, its prompt takes nothing: another terminal's kill
// -CONT is the way to let the command go on. Without a terminal there is
// no Ctrl-C to offer: it says when stepbox ends the command itself.
func (sh *Shell) sayStopped(what string) func(primitives.StoppedCommand) {
	noTerminal := sh.Terminal == nil
	return func(c primitives.StoppedCommand) {
		pid, how := stoppedCommand(c)
		ends := "Ctrl-C ends it (SIGKILL to its process group)"
		if noTerminal {
			ends = fmt.Sprintf("with no terminal of yours to press Ctrl-C in, stepbox ends it itself (SIGKILL to its process group) once it has stayed stopped for %s", stoppedEnd)
		}
		sh.say("%s", sh.Theme.Warn.Render(fmt.Sprintf("! %s: the command (%s) is %s and waits to be continued: %s; `kill -CONT %d` from another terminal continues it",
			what, pid, how, ends, c.HostPID)))
	}
}

// stoppedCommand names a stopped command by its PIDs, and says how it
// is stopped.
func stoppedCommand(c primitives.StoppedCommand) (pid, how string) {
	how = "stopped by a signal (state T: SIGSTOP, SIGTSTP, SIGTTIN or SIGTTOU, from the box or itself)"
	if c.State == "t" {
		how = "held in a tracing stop (state t: a debugger, ptrace(2))"
	}
	pid = fmt.Sprintf("host PID %d", c.HostPID)
	if c.BoxPID != 0 && c.BoxPID != c.HostPID {
		pid = fmt.Sprintf("PID %d in the box, host PID %d", c.BoxPID, c.HostPID)
	}
	return pid, how
}
