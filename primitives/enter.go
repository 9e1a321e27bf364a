package primitives

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"stepbox/primitives/step"
)

// enterOrder is the order `enter` joins the box's namespaces in: those
// the host's user namespace owns first (after joining the box's user
// namespace the caller has no capability over them), then the user
// namespace, then the namespaces it owns (user_namespaces(7), setns(2)).
func enterOrder(pid int, types []NamespaceType) []NamespaceType {
	hostUser := nsOwner("/proc/self/ns/user", true)
	self, _ := os.Stat("/proc/self/ns/user")
	var first, user, rest []NamespaceType
	for _, t := range types {
		switch {
		case t.Name == "user":
			user = append(user, t)
		case hostUser != 0 && self != nil && nsOwner(fmt.Sprintf("/proc/%d/ns/%s", pid, t.Proc), false) != userInode(self):
			rest = append(rest, t)
		default:
			first = append(first, t)
		}
	}
	return append(append(first, user...), rest...)
}

func userInode(fi os.FileInfo) uint32 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint32(st.Ino)
	}
	return 0
}

// enterRecord is the record `enter` writes, and its plan: the setns
// calls in order, and, joining a user namespace, becoming its root.
func enterRecord(pid int, types []NamespaceType, path string, argv []string, verb string) *step.Step {
	st := &step.Step{
		Command: "enter",
		Summary: fmt.Sprintf("%s the namespaces of PID %d from the host, then %s %s there", verb, pid, map[string]string{"joined": "ran", "will join": "will run"}[verb], step.ShellJoin(argv)),
		Man:     []string{"setns(2)", "nsenter(1)"},
		Undo:    "nothing to undo: the entered command ends, the box stays",
	}
	opts := []string{"nsenter", "-t", fmt.Sprint(pid)}
	for i, t := range types {
		opts = append(opts, t.Short)
		st.Plan(fmt.Sprintf("setns(%d</proc/%d/ns/%s>, %s)", i+3, pid, t.Proc, step.CloneFlags(t.Flag)))
	}
	if joinsUser(types) {
		if os.Geteuid() == 0 {
			st.Plan("setgroups(0, NULL)")
		}
		st.Plan("setresgid(0, 0, 0)")
		st.Plan("setresuid(0, 0, 0)")
	}
	st.Plan("clone(child_stack=NULL, flags=SIGCHLD)   # fork: a PID namespace joined applies to children")
	st.Plan(fmt.Sprintf("execve(%s, %s, …)", step.Quote(path), quoteArgv(argv)))
	st.Shell = []string{strings.Join(opts, " ") + " " + step.ShellJoin(argv)}
	return st
}

// enterPath finds the command as it will be seen: in the box's files
// when `enter` joins its mount namespace, else in the host's.
func enterPath(pid int, types []NamespaceType, name string, env []string) (string, error) {
	at := func(p string) string { return p }
	for _, t := range types {
		if t.Name == "mnt" {
			at = func(p string) string { return fmt.Sprintf("/proc/%d/root%s", pid, p) }
		}
	}
	return lookPath(at, name, env)
}

func joinsUser(types []NamespaceType) bool {
	for _, t := range types {
		if t.Name == "user" {
			return true
		}
	}
	return false
}

// Enter runs argv in the box's namespaces of the given types, joined from
// the host with setns(2) by a fresh stepbox process whose constructor
// (executor.c, enter) does the joining before the Go runtime starts, as
// `nsenter -t PID -m -p -u CMD` does; single-threaded, it may join a user
// or time namespace too. The session stays where it is.
func (b *Box) Enter(ctx context.Context, types []NamespaceType, argv []string, std Stdio) (ExitStatus, *step.Step, error) {
	pid, start := b.commandProc()
	types = enterOrder(pid, types)
	env := b.env(nil)
	path, err := enterPath(pid, types, argv[0], env)
	st := enterRecord(pid, types, path, argv, "joined")
	if err != nil {
		return ExitStatus{}, st, err
	}
	for _, t := range types {
		if t.Name == "mnt" {
			// In the box's mount namespace the command writes its upper dir.
			b.mu.Lock()
			err = b.roomToWrite("enter")
			b.mu.Unlock()
			if err != nil {
				return ExitStatus{}, st, err
			}
		}
	}
	var files []*os.File
	defer func() { closeAll(files) }()
	flags := 0
	args := []string{"stepbox", entryEnter, "", strconv.Itoa(3 + len(types))}
	for _, t := range types {
		f, err := os.Open(fmt.Sprintf("/proc/%d/ns/%s", pid, t.Proc))
		if err != nil {
			return ExitStatus{}, st, fmt.Errorf("enter: %w", err)
		}
		files = append(files, f)
		args = append(args, strconv.Itoa(int(t.Flag)))
	}
	// Still the box's process once its namespace files are open: a PID
	// that had ended and been reused would have handed `enter` another
	// process's namespaces.
	if err := stillTheProcess(pid, start); err != nil {
		return ExitStatus{}, st, fmt.Errorf("enter: box %s: %w", b.Name, err)
	}
	if joinsUser(types) {
		flags |= enterRoot
		if os.Geteuid() == 0 {
			flags |= enterNoGroups
		}
	}
	if std.In != nil && IsTerminal(std.In) {
		flags |= enterTTY
	}
	args[2] = strconv.Itoa(flags)
	args = append(args, "--", path)
	args = append(args, argv...)
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return ExitStatus{}, st, err
	}
	defer statusR.Close()
	files = append(files, statusW)
	// From the sealed copy (selfexe.go): once in the box's namespaces,
	// its /proc/<PID>/exe must not lead to the host's binary.
	exe, err := SelfExePath()
	if err != nil {
		return ExitStatus{}, st, fmt.Errorf("enter: %w", err)
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Args = args
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = std.In, std.Out, std.Err
	cmd.ExtraFiles = files
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 2 * time.Second
	unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err := cmd.Start(); err != nil {
		return ExitStatus{}, st, fmt.Errorf("enter: %w", err)
	}
	closeAll(files)
	files = nil
	err = cmd.Wait()
	var msg [2]int32
	if binary.Read(statusR, binary.NativeEndian, &msg) == nil {
		// The enter process reported a failed call: no command ran.
		return ExitStatus{}, st, enterFailure(st, types, msg[0], unix.Errno(msg[1]))
	}
	markRun(st.Calls)
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

// markRun gives every call of a record whose command ran the result 0.
func markRun(calls []step.Call) {
	for i := range calls {
		calls[i].Result = "0"
	}
}

// enterFailure records which call of the enter process failed, by its
// step number (executor.h, XENTER_*), and says why.
func enterFailure(st *step.Step, types []NamespaceType, n int32, errno unix.Errno) error {
	idx := -1
	switch {
	case n >= 1 && int(n) <= len(types):
		idx = int(n) - 1
	case n >= enterSetgroups && n <= enterSetresuid:
		idx = len(types) + int(n-enterSetgroups)
		if os.Geteuid() != 0 {
			idx-- // no setgroups call was made
		}
	case n == enterFork:
		idx = len(st.Calls) - 2
	case n == enterExecve:
		idx = len(st.Calls) - 1
	}
	if idx < 0 || idx >= len(st.Calls) {
		return fmt.Errorf("enter: the enter process failed at step %d: %w", n, errno)
	}
	for i := range st.Calls[:idx] {
		st.Calls[i].Result = "0"
	}
	st.Calls[idx].Result = step.Result(errno)
	err := &step.SyscallError{Call: st.Calls[idx].Syscall, Err: errno}
	if idx < len(types) {
		return fmt.Errorf("enter: %w (%s)", err, setnsHint(types[idx], errno))
	}
	return fmt.Errorf("enter: %w", err)
}

func setnsHint(t NamespaceType, err error) string {
	switch {
	case t.Name == "time" && err == unix.EUSERS:
		return "only a single-threaded process may join a time namespace"
	case err == unix.EPERM:
		return "joining needs CAP_SYS_ADMIN in the user namespace that owns the box's namespaces"
	}
	return "see setns(2)"
}
