package primitives

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"stepbox/primitives/step"
)

// runEnter is the `__enter PID TYPE… -- CMD…` entry point: a fresh process
// of the session's, locked to its main thread, that joins the namespaces
// of a box process with setns(2) and runs a command there, as
// `nsenter -t PID` does. The session itself never changes namespace.
func runEnter(args []string) int {
	if len(args) < 3 {
		fmt.Fprintln(os.Stderr, "stepbox __enter: usage: __enter PID TYPE... -- CMD...")
		return 2
	}
	pid, err := strconv.Atoi(args[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "stepbox __enter: bad pid %q\n", args[0])
		return 2
	}
	var types []NamespaceType
	var argv []string
	for i, a := range args[1:] {
		if a == "--" {
			argv = args[i+2:]
			break
		}
		t, err := LookupNamespace(a)
		if err != nil {
			fmt.Fprintln(os.Stderr, "enter:", err)
			return 2
		}
		types = append(types, t)
	}
	if len(argv) == 0 {
		fmt.Fprintln(os.Stderr, "enter: no command after --")
		return 2
	}
	if err := setnsAll(pid, types); err != nil {
		fmt.Fprintln(os.Stderr, "enter:", err)
		return 1
	}
	path, err := lookPath(func(p string) string { return p }, argv[0], os.Environ())
	if err != nil {
		fmt.Fprintln(os.Stderr, "enter:", err)
		return 127
	}
	// Joining a PID namespace changes only the children's (pid_namespaces(7)),
	// so the command runs in a child, as nsenter(1) forks.
	attr := &syscall.SysProcAttr{}
	// No Pdeathsig: Go's child checks getppid() against the parent's
	// PID after setting it, and a child in a PID namespace its parent
	// is not in sees 0, so it would SIGKILL itself.
	if IsTerminal(os.Stdin) {
		// On a terminal the command gets a process group of its own in
		// the foreground, as `sh` does: an interactive shell in the box's
		// PID namespace could not hand the terminal back to a group it
		// cannot see (ESRCH), and the session takes it back afterwards.
		// Ctty is this process's descriptor of the terminal (stdin).
		attr.Setpgid, attr.Foreground, attr.Ctty = true, true, 0
	}
	p, err := os.StartProcess(path, argv, &os.ProcAttr{
		Env:   os.Environ(),
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Sys:   attr,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "enter: exec %s: %v\n", argv[0], err)
		return 127
	}
	// Ctrl-C belongs to the command; this process only waits for it.
	signal.Ignore(syscall.SIGINT, syscall.SIGQUIT)
	ps, err := p.Wait()
	if err != nil {
		fmt.Fprintln(os.Stderr, "enter:", err)
		return 1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// setnsAll opens every namespace first (a later setns into the mount
// namespace would change what /proc shows), then joins them in order.
func setnsAll(pid int, types []NamespaceType) error {
	fds := make([]int, len(types))
	for i, t := range types {
		p := fmt.Sprintf("/proc/%d/ns/%s", pid, t.Proc)
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", p, err)
		}
		fds[i] = fd
		defer unix.Close(fd)
	}
	for i, t := range types {
		if t.Name == "mnt" {
			// Go's threads share one fs_struct (CLONE_FS); a thread may join
			// another mount namespace only after it has its own.
			if err := unix.Unshare(unix.CLONE_FS); err != nil {
				return fmt.Errorf("unshare(CLONE_FS): %w", err)
			}
		}
		if err := unix.Setns(fds[i], int(t.Flag)); err != nil {
			return fmt.Errorf("setns(/proc/%d/ns/%s, %s): %w (%s)", pid, t.Proc, step.CloneFlags(t.Flag), err, setnsHint(t, err))
		}
	}
	return nil
}

func setnsHint(t NamespaceType, err error) string {
	switch {
	case t.Name == "user":
		return "a multi-threaded process cannot join a user namespace; stepbox, written in Go, is one"
	case t.Name == "time" && err == unix.EUSERS:
		return "only a single-threaded process may join a time namespace"
	case err == unix.EPERM:
		return "joining needs CAP_SYS_ADMIN in the user namespace that owns the box's namespaces"
	}
	return "see setns(2)"
}

// Enter runs argv in the box's namespaces of the given types, joined from
// the host with setns(2) by a fresh stepbox process, as
// `nsenter -t PID -m -p -u CMD` does. The session stays where it is.
func (b *Box) Enter(ctx context.Context, types []NamespaceType, argv []string, std Stdio) (ExitStatus, *step.Step, error) {
	pid := b.CommandPID()
	st := &step.Step{
		Command: "enter",
		Summary: fmt.Sprintf("joined the namespaces of PID %d from the host, then ran %s there", pid, step.ShellJoin(argv)),
		Man:     []string{"setns(2)", "nsenter(1)"},
		Undo:    "nothing to undo: the entered command ends, the box stays",
	}
	args := []string{"stepbox", entryEnter, fmt.Sprint(pid)}
	opts := []string{"nsenter", "-t", fmt.Sprint(pid)}
	for i, t := range types {
		if t.Name == "user" {
			return ExitStatus{}, st, fmt.Errorf("enter user: %s", setnsHint(t, nil))
		}
		args = append(args, t.Name)
		opts = append(opts, t.Short)
		st.Calls = append(st.Calls, step.Call{Syscall: fmt.Sprintf("setns(%d</proc/%d/ns/%s>, %s)", i+3, pid, t.Proc, step.CloneFlags(t.Flag)), Result: "0"})
	}
	args = append(args, "--")
	args = append(args, argv...)
	st.Shell = []string{strings.Join(opts, " ") + " " + step.ShellJoin(argv)}
	cmd := exec.CommandContext(ctx, selfExe)
	cmd.Args = args
	cmd.Env = b.env(nil)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = std.In, std.Out, std.Err
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 2 * time.Second
	unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		es := ExitStatus{Code: ee.ExitCode()}
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			es.Code, es.Signal = 128+int(ws.Signal()), unix.SignalName(ws.Signal())
		}
		return es, st, nil
	}
	if err != nil {
		return ExitStatus{}, st, fmt.Errorf("enter: %w", err)
	}
	return ExitStatus{}, st, nil
}
