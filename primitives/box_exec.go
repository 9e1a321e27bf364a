package primitives

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"stepbox/primitives/inroot"
	"stepbox/primitives/step"
)

// Stdio is where a command's standard streams go. A command never gets
// a descriptor of the learner's terminal: a terminal passed as Out or Err
// is written through a pipe the session copies from, one as In is
// refused (guardStdio), and a command that needs a terminal gets one of
// its own, relayed to Terminal.
type Stdio struct {
	In       *os.File // nil: /dev/null
	Out, Err io.Writer
	// Terminal, when set, is the learner's terminal: the command gets a
	// pty of its own as fds 0-2 and controlling terminal, and In, Out and
	// Err are not used (as `docker run -it`).
	Terminal *Terminal
	// Signals are passed on to the command's process group as they
	// come: the terminal's Ctrl-C and Ctrl-\ reach the session, not the
	// command, which has no controlling terminal (setsid).
	Signals <-chan os.Signal
	// Stopped, when set, is called once (from another goroutine) if the
	// command stays stopped for stoppedGrace while it is waited for: a
	// stopped command never exits, and the wait looks hung (ut33 F3).
	Stopped func(StoppedCommand)
	// EndStopped, when set, is how long the command may stay stopped
	// before the wait ends it, with SIGKILL to its process group as
	// Ctrl-C's does (ExitStatus.EndedStopped): a session without a
	// terminal has no Ctrl-C, and its run waited for ever (ut34 F4).
	EndStopped time.Duration
}

// Exec runs argv inside the box and waits for it. Cancelling ctx sends
// SIGINT to the command's process group, then SIGKILL. The command leads
// a session of its own and never holds the learner's terminal: pipes, or
// a pty of its own (std.Terminal); std.Signals carries the terminal's
// signals to a command without one.
// ExitStatus.Step is the record: the plan's calls with what happened.
func (b *Box) Exec(ctx context.Context, argv []string, env []string, std Stdio) (ExitStatus, error) {
	plan := b.PlanExec
	if std.Terminal != nil {
		plan = b.PlanExecTerminal
	}
	st, err := plan(argv)
	if err != nil {
		return ExitStatus{}, err
	}
	st.Ran()
	es, err := b.exec(ctx, argv, env, std, st, nil)
	es.Step = st
	if err != nil {
		// Another box may hold the tasks: say whose (session_tasks.go).
		err = b.session.taskCapError(err)
	}
	return es, err
}

// PlanExec is the record of `exec CMD…`, and the one list of calls exec
// performs (it fills in their results): the process that applies the
// box's steps forks the command, which inherits every namespace, the
// root and the cgroup the steps gave it, and execs it.
func (b *Box) PlanExec(argv []string) (*step.Step, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("exec: name a command to run inside the box")
	}
	pid := b.CommandPID()
	from := fmt.Sprintf("the box process (host PID %d)", pid)
	if b.InitPID() != 0 {
		from = fmt.Sprintf("the box's PID 1 (host PID %d)", pid)
	}
	st := &step.Step{
		Command: "exec " + step.ShellJoin(argv),
		Shell:   []string{fmt.Sprintf("nsenter --target %d --all --root --wd %s", pid, step.ShellJoin(argv))},
		Man:     []string{"clone(2)", "execve(2)", "nsenter(1)"},
		Undo:    "nothing to undo: the process ends with the command; what it wrote stays in the box (in its upper dir after `mount overlay`)",
	}
	// The cgroup is the one the forking process is in, read from the
	// kernel: stepbox's tracking cgroup from `new`, the box's own only
	// once `cgroup attach` moved the process (ut26 F19).
	made := "every namespace and the root the steps made, and " + b.cgroupsOf(pid).words()
	st.Tell("ran "+argv[0]+" inside the box: "+from+" forked it, and it inherited "+made,
		"will run "+argv[0]+" inside the box: "+from+" will fork it, and it will inherit "+made)
	st.MarkNotRun()
	st.Plan("clone(child_stack=NULL, flags=SIGCHLD)   # fork, in " + from)
	st.Plan(setsidCall)
	st.Plan("dup3(FD, 0, 0); dup3(FD, 1, 0); dup3(FD, 2, 0)   # pipes the session prints from, and /dev/null: never your terminal")
	for _, c := range securityCalls(b.spawnSettings()) {
		st.Plan(c.call)
	}
	b.mu.Lock()
	env := b.execArgs(argv, nil).Env
	b.mu.Unlock()
	// Looked up as exec will look it up; exec records what it found.
	path, err := lookPath(fmt.Sprintf("/proc/%d/root", pid), argv[0], env)
	if err != nil {
		path = argv[0]
	}
	st.Plan(execveCall(path, argv))
	st.Plan("wait4(-1, …, WNOHANG, NULL)   # the box reaps it and reports its exit status")
	st.Notes = append(st.Notes, "nsenter does not change cgroup; stepbox's command starts in the cgroup of its parent, "+from)
	return st, nil
}

// execveCall is exec's execve(2) of the command found at path.
func execveCall(path string, argv []string) string {
	return fmt.Sprintf("execve(%s, %s, …)", step.Quote(path), quoteArgv(argv))
}

func quoteArgv(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = step.Quote(a)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// setsidCall is the record's line for a box command's setsid(2): a
// session of its own without a controlling terminal, so that no command
// in a box may push input into the learner's terminal (TIOCSTI, CVE-2017-5226
// in bubblewrap) nor take its foreground.
const setsidCall = "setsid()   # a session of its own, never your terminal: pipes, or a pty of its own for sh"

// ownTerminalCall is exec's line for the stdio of a command given a pty
// of its own (Stdio.Terminal).
const ownTerminalCall = "dup3(PTY, 0, 0); dup3(PTY, 1, 0); dup3(PTY, 2, 0); ioctl(0, TIOCSCTTY, 0)   # a pty of its own from /dev/ptmx, its controlling terminal; the session relays it to yours"

// PlanExecTerminal is PlanExec for a command given a pty of its own, as
// `sh` is.
func (b *Box) PlanExecTerminal(argv []string) (*step.Step, error) {
	st, err := b.PlanExec(argv)
	if err == nil {
		st.Calls[execDup].Syscall = ownTerminalCall
	}
	return st, err
}

// Where exec's record (PlanExec) holds each call: the settings'
// calls (securityCalls) follow execDup, then execve and wait4 close it.
const (
	execClone = iota
	execSetsid
	execDup
	execSecurity
)

// execFile is a file the box runs by descriptor, which its root need
// not hold (execveat(2) with AT_EMPTY_PATH), with descriptors the command
// gets as 3, 4, ….
type execFile struct {
	Name  string // for the record
	Exe   *os.File
	Extra []*os.File
	// Watch, when set, is started with the command's host PID (0 when
	// the session could not tell it) as soon as the executor has started
	// it, and stopped once the executor reports its exit: until then
	// the process is not reaped, and its /proc/PID is its own.
	Watch func(pid int) (stop func())
}

// spawnSettings are the settings and ids a command started now gets.
func (b *Box) spawnSettings() (Security, *IDs) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.security.clone(), b.execArgs(nil, nil).User
}

func (b *Box) exec(ctx context.Context, argv []string, env []string, std Stdio, st *step.Step, run *execFile) (ExitStatus, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dead != nil {
		return ExitStatus{}, b.dead
	}
	if err := b.roomToWrite("exec " + argv[0]); err != nil {
		return ExitStatus{}, err
	}
	x := b.active()
	if x == b.box {
		// Before `unshare pid`: the command is not in a PID namespace of
		// the box's, so its PID 1 will not take it along (box_pidns.go).
		if err := b.hostPIDCommand(); err != nil {
			return ExitStatus{}, fmt.Errorf("exec %s: %w", argv[0], err)
		}
	}
	args := b.execArgs(argv, env)
	if err := b.checkCommandIDs("exec "+argv[0], args.User); err != nil {
		return ExitStatus{}, err
	}
	envv := args.Env
	if run != nil {
		// stepbox's own binary (`probe`), started through the host's
		// ELF interpreter when it is dynamic: stepbox's environment, not
		// the image's, whose LD_PRELOAD would load the image's code into
		// the process that reports on the box (ut27 F5).
		envv = b.env(nil)
	}
	path, err := "", error(nil)
	if run != nil {
		path = run.Name
	} else if path, err = lookPath(x.Path("/"), argv[0], envv); err != nil {
		return ExitStatus{}, err
	}
	if args.Dir != "" {
		if err := makeWorkingDirAt(x.Path("/"), args.Dir); err != nil {
			return ExitStatus{}, fmt.Errorf("exec %s: the image's WorkingDir %s: %w", argv[0], args.Dir, err)
		}
	}
	nums := []int64{spawnSetsid, int64(len(argv)), 0, 0}
	files, pump, tty, err := commandStdio(std)
	if err != nil {
		return ExitStatus{}, fmt.Errorf("exec %s: %w", argv[0], err)
	}
	if tty != nil {
		defer tty.close()
		nums[0] |= spawnCtty
	}
	unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if args.User != nil {
		nums[0] |= spawnSetID
		nums[2], nums[3] = int64(args.User.UID), int64(args.User.GID)
	}
	strs := append([]string{path, args.Dir}, argv...)
	strs = append(strs, envv...)
	sec := b.security
	if !sec.empty() {
		nums[0] |= spawnSecurity
		strs = append(strs, sec.wire())
	}
	secCalls := securityCalls(sec, args.User)
	execExecve, execWait := len(st.Calls)-2, len(st.Calls)-1
	if run == nil {
		// What the lookup found now, in the box as it is now.
		st.Calls[execExecve].Syscall = execveCall(path, argv)
	}
	send := files.send
	if run != nil {
		nums[0] |= spawnExecFD
		send = append(append(append([]*os.File(nil), send...), run.Exe), run.Extra...)
	}
	restore := b.lendOOMScore(x.pid)
	disarm := x.interruptible(ctx) // Ctrl-C while the executor does not answer
	r, err := x.do(opSpawn, nums, strs, send...)
	disarm()
	restore()
	files.closeSent()
	if tty != nil {
		tty.closeSlave()
	}
	if err != nil {
		pump.wait(0)
		if silent := (*BoxSilentError)(nil); errors.As(err, &silent) && silent.Op == opSpawn.String() {
			silent.Op += " of " + argv[0] // the command the learner asked for
		}
		return ExitStatus{}, err
	}
	if err := r.errno(); err != nil {
		closeAll(r.files)
		pump.wait(0)
		if i := securityFailure(secCalls, r.Step); i >= 0 {
			markRun(st.Calls[:execSecurity+i])
			st.Calls[execSecurity+i].Result = step.Result(err)
			return ExitStatus{}, fmt.Errorf("exec %s: %w", argv[0], securityError(secCalls[i].call, err))
		}
		call, at := spawnCall(r.Step, path, args.Dir, argv)
		if at < 0 {
			at = execExecve
		}
		st.Calls[at].Result = step.Result(err)
		return ExitStatus{}, fmt.Errorf("exec %s: %w", argv[0], &step.SyscallError{Call: call, Err: err})
	}
	pid := int(r.Val)
	markRun(st.Calls[:execWait])
	st.Calls[execClone].Result = fmt.Sprint(pid)
	st.Calls[execSetsid].Result = fmt.Sprint(pid) // the new session's ID is the child's PID
	// The command carries the box's environment markers, which the
	// ledger's "processes" line covers: no line of its own is needed.
	var pidfd *os.File
	if len(r.files) == 1 {
		pidfd = r.files[0]
		defer pidfd.Close()
	} else {
		closeAll(r.files)
	}
	// Ctrl-C signals the command through that pidfd, and its process
	// group by the pidfd's PID: both are the executor's word, checked.
	if ok, err := spawnedChild(pidfd, x.pid, pid); err != nil {
		pump.wait(0)
		return ExitStatus{}, x.distrust(opSpawn, err)
	} else if !ok {
		pidfd = nil // it has already exited: nothing to cancel
	}
	// A command may run as long as it likes; once cancelled, its exit
	// (or the executor's) must come within replyTimeout, and once it has
	// ended, within interruptGrace.
	x.c.c.SetReadDeadline(time.Time{})
	defer x.c.cutAt.Store(0)
	// An executor stopped never reports the exit; a frozen command
	// never exits (box_freeze.go).
	cmdPID := 0
	if pidfd != nil {
		cmdPID = pidfdPID(pidfd)
	}
	unwatch := x.watchStopped(cmdPID)
	var endedStopped *StoppedCommand
	unwatchCmd := watchCommandStopped(func() int { return cmdPID }, std, func() { killCommand(pidfd) }, &endedStopped)
	stopWatch := func() {}
	if run != nil && run.Watch != nil {
		stopWatch = run.Watch(cmdPID)
	}
	done, stopped := make(chan struct{}), make(chan struct{})
	detached := false
	go func() {
		defer close(stopped)
		for {
			select {
			case <-tty.Detached():
				// The learner's detach keys: no asking, the command may
				// ignore every signal it can.
				detached = true
				x.c.c.SetReadDeadline(time.Now().Add(replyTimeout))
				killCommand(pidfd)
				return
			case <-ctx.Done():
				x.c.c.SetReadDeadline(time.Now().Add(2*time.Second + replyTimeout))
				cancelCommand(pidfd, done)
				select {
				case <-done:
				default:
					x.cutOnceEnded(pidfd)
				}
				return
			case s := <-std.Signals:
				forwardSignal(pidfd, s)
			case <-done:
				return
			}
		}
	}()
	exit, err := x.c.read()
	stopWatch()
	unwatchCmd()
	unwatch()
	close(done)
	// The canceller is done with the pidfd (closed on return) and the
	// socket's deadline before the next op sets its own.
	<-stopped
	if errors.Is(err, os.ErrDeadlineExceeded) {
		pump.wait(0)
		what := "wait for " + argv[0] + "'s exit after it was cancelled"
		if seen := x.c.stopped.Load(); seen != nil {
			what = "with " + argv[0] + "'s exit"
			// Ctrl-C that had not cut the wait yet (cancelCommand's
			// grace) was pressed all the same.
			seen.interrupted = seen.interrupted || ctx.Err() != nil
		}
		return ExitStatus{}, x.silent(what, err)
	}
	if err != nil {
		pump.wait(0)
		return ExitStatus{}, b.died(err)
	}
	x.c.answered()
	closeAll(exit.files)
	if exit.Kind != replyExited || int(exit.Val) != pid {
		pump.wait(0)
		return ExitStatus{}, fmt.Errorf("exec %s: the executor answered with a reply of kind %d for PID %d, not the exit of PID %d", argv[0], exit.Kind, exit.Val, pid)
	}
	ws := unix.WaitStatus(exit.Val2)
	es := ExitStatus{Code: ws.ExitStatus(), Detached: detached}
	st.Calls[execWait].Result = fmt.Sprintf("%d (exit status %d)", pid, es.Code)
	if ws.Signaled() {
		es.Code = 128 + int(ws.Signal())
		es.Signal = unix.SignalName(ws.Signal())
		st.Calls[execWait].Result = fmt.Sprintf("%d (killed by %s)", pid, es.Signal)
		es.EndedStopped = endedBy(endedStopped, ws.Signal())
	}
	// Output a command left to a background child can keep a pipe open:
	// take what is there, then stop.
	pump.wait(100 * time.Millisecond)
	if es.Code != 0 {
		es.Full = b.upperFull()
	}
	return es, nil
}

// execArgs is what a command is started with.
type execArgs struct {
	Argv []string
	Env  []string
	Dir  string // working directory (an image's WorkingDir)
	User *IDs   // uid and gid (an image's User)
}

// execArgs is the exec request: the image's environment under the
// caller's, its working directory and its user, once the overlay is the
// box's root. Before, "/app" would name a directory of the host, and the
// command is a host program: an image's LD_PRELOAD or PATH would run the
// image's own code as the host's root. Called with b.mu held.
func (b *Box) execArgs(argv, env []string) execArgs {
	if !b.fs.Pivoted && !b.fs.Chrooted {
		return execArgs{Argv: argv, Env: b.env(env)}
	}
	return execArgs{Argv: argv, Env: b.env(append(append([]string(nil), b.process.Env...), env...)),
		Dir: b.process.Dir, User: b.process.IDs}
}

// spawnCall names the call of the spawned child that failed, by the
// executor's step number (executor.c, op_spawn), and where exec's record
// holds it: -1 for the execve line. The settings' calls and the uid
// change are securityCalls'.
func spawnCall(n uint32, path, dir string, argv []string) (string, int) {
	switch n {
	case 1:
		return "prctl(PR_SET_PDEATHSIG, SIGKILL)", execClone
	case 2:
		return "setsid()", execSetsid
	case 3:
		return "dup3(FD, 0..2, 0)", execDup
	case 5:
		return "chdir(" + step.Quote(orSlash(dir)) + ")", -1
	case 6:
		return "close_range(3, ~0U, CLOSE_RANGE_CLOEXEC)", -1
	case 7:
		return execveCall(path, argv), -1
	case secStepDecode:
		return "the settings sent to the executor (struct xsec)", -1
	case 11:
		return "fcntl(FD, F_DUPFD_CLOEXEC); dup2(FD, 3…)", execDup
	case 12:
		return "ioctl(0, TIOCSCTTY, 0)", execDup
	}
	return "clone(child_stack=NULL, flags=SIGCHLD)", execClone
}

func orSlash(dir string) string {
	if dir == "" {
		return "/"
	}
	return dir
}

// makeWorkingDirAt is makeWorkingDir in the root reached from the host
// at root (/proc/PID/root).
func makeWorkingDirAt(root, dir string) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	return makeWorkingDir(r, dir)
}

// makeWorkingDir makes dir inside the box's root r when it is missing, as
// runc and Docker make a missing cwd: each directory made 0755 and owned
// as the box's / is. os.Root resolves the path inside r: a symlink in the
// image cannot make it create anything outside the box. Exec and enter
// both make it so, then chdir to it from inside the box.
func makeWorkingDir(r *os.Root, dir string) error {
	top, err := r.Stat(".")
	if err != nil {
		return err
	}
	owner, _ := top.Sys().(*syscall.Stat_t)
	rel := ""
	for _, part := range strings.Split(strings.Trim(filepath.Clean(dir), "/"), "/") {
		if part == "" {
			continue
		}
		rel = filepath.Join(rel, part)
		err := r.Mkdir(rel, 0o755)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("mkdir %s in the box: %w", "/"+rel, err)
		}
		if owner != nil {
			if err := r.Lchown(rel, int(owner.Uid), int(owner.Gid)); err != nil {
				return err
			}
		}
	}
	return nil
}

// ExitStatus is how a command inside a box ended.
type ExitStatus struct {
	Code   int        `json:"code"`             // exit code, or 128+signal
	Signal string     `json:"signal,omitempty"` // the signal that killed it
	Full   string     `json:"full,omitempty"`   // what filled up, where the box's upper tmpfs is full
	Step   *step.Step `json:"-"`                // what was done, in strace form
	// Detached: the learner pressed the detach keys, which killed it.
	Detached bool `json:"detached,omitempty"`
	// PassedOn (enter): the signal the enter process received and passed
	// on to the command before it ended (the terminal's Ctrl-C reaches
	// stepbox's process group, the enter process included).
	PassedOn string `json:"passed_on,omitempty"`
	// EndedStopped: it stayed stopped for Stdio.EndStopped, and the wait
	// killed it (SIGKILL to its process group).
	EndedStopped *StoppedCommand `json:"ended_stopped,omitempty"`
}

// endedBy is the stop a watch ended the command for, once the command
// was killed by sig: SIGKILL, the watch's. A command continued and ended
// otherwise just before was not ended for its stop.
func endedBy(ended *StoppedCommand, sig syscall.Signal) *StoppedCommand {
	if sig != unix.SIGKILL {
		return nil
	}
	return ended
}

// lookPath finds a command in the PATH of the command's environment, as
// the box sees its filesystem: root is where this process reaches the
// box's / (/proc/PID/root), and each path resolves inside it, as in the
// box, never through a symlink on the host.
func lookPath(root string, name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := searchPath(env)
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		st, err := statInRoot(root, p)
		if err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Mode&0o111 != 0 {
			return p, nil
		}
		if err != nil && !notThere(root, err) {
			// Not an answer about the name: saying "not found" would
			// send the learner after a file that is there (ut25 F8).
			return "", fmt.Errorf("exec: %q: looking for it in the box's PATH at %s: %w", name, p, err)
		}
	}
	return "", fmt.Errorf("exec: %q: command not found in the box (PATH=%s)", name, path)
}

// statInRoot is inroot.Stat, tried again on EAGAIN and EINTR: openat2(2)
// with RESOLVE_IN_ROOT answers EAGAIN when a rename or mount raced the
// lookup, and says to retry.
func statInRoot(root, name string) (unix.Stat_t, error) {
	var err error
	for range 3 {
		var st unix.Stat_t
		if st, err = inroot.Stat(root, name); !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
			return st, err
		}
	}
	return unix.Stat_t{}, err
}

// notThere reports whether err, from looking name up inside root, says
// only that the name is not a file there: not that root cannot be
// reached, nor that the host is short of memory or the lookup raced.
func notThere(root string, err error) bool {
	var pe *os.PathError
	if errors.As(err, &pe) && pe.Path == root {
		return false // the box's root itself: its process is gone
	}
	for _, e := range []error{unix.ENOENT, unix.ENOTDIR, unix.ELOOP, unix.EACCES, unix.ENAMETOOLONG} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// cancelCommand asks politely (SIGINT to the process group), then insists.
func cancelCommand(pidfd *os.File, done <-chan struct{}) {
	if pidfd == nil {
		return
	}
	endCommand(done, func() {
		if hp := pidfdPID(pidfd); hp > 0 {
			unix.Kill(-hp, unix.SIGINT)
		}
	}, func() { killCommand(pidfd) })
}

// cancelGrace is how long a cancelled command has to end on its SIGINT
// before it is killed: a stopped one never will (ut33 F3).
const cancelGrace = 2 * time.Second

// endCommand is a command's cancel, for exec and enter alike: interrupt,
// and kill once it has not ended (done) within cancelGrace.
func endCommand(done <-chan struct{}, interrupt, kill func()) {
	interrupt()
	select {
	case <-done:
	case <-time.After(cancelGrace):
		kill()
	}
}

// killCommand sends SIGKILL to the command's process group and to the
// command itself through the executor's checked pidfd.
func killCommand(pidfd *os.File) {
	if pidfd == nil {
		return
	}
	if hp := pidfdPID(pidfd); hp > 0 {
		unix.Kill(-hp, unix.SIGKILL)
	}
	unix.PidfdSendSignal(int(pidfd.Fd()), unix.SIGKILL, nil, 0)
}

// forwardSignal passes a signal the session got from the terminal to the
// command's process group: the command leads it (setsid), its PID read
// from the executor's checked pidfd.
func forwardSignal(pidfd *os.File, s os.Signal) {
	sig, ok := s.(syscall.Signal)
	if pidfd == nil || !ok {
		return
	}
	if hp := pidfdPID(pidfd); hp > 0 {
		unix.Kill(-hp, sig)
	}
}

// pidfdPID reads the PID behind a pidfd as this process's namespace sees
// it (the "Pid:" line of /proc/self/fdinfo, see pidfd_open(2)).
func pidfdPID(f *os.File) int {
	pid, _ := pidfdIDs(f)
	return pid
}

// pidfdIDs reads the "Pid:" and "NSpid:" lines of a pidfd's fdinfo: its
// PID here, and its PID in each PID namespace from this one down to its
// own (0 and nil when it has been reaped, or the kernel shows no NSpid).
func pidfdIDs(f *os.File) (pid int, nspid []int) {
	b, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(int(f.Fd())))
	if err != nil {
		return 0, nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Pid:"); ok {
			pid, _ = strconv.Atoi(strings.TrimSpace(v))
		} else if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
			for _, f := range strings.Fields(v) {
				n, err := strconv.Atoi(f)
				if err != nil {
					return pid, nil
				}
				nspid = append(nspid, n)
			}
		}
	}
	return max(pid, 0), nspid
}

// searchPath is the PATH of env, or the box's default.
func searchPath(env []string) string {
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	return path
}

// maxPrograms bounds what Programs reads of one directory a box fills.
const maxPrograms = 10_000

// Programs lists the names of the programs `exec NAME` finds in the
// box's PATH, read from the host through /proc/PID/root: what a typo
// could have meant.
func (b *Box) Programs() []string {
	root := fmt.Sprintf("/proc/%d/root", b.CommandPID())
	var out []string
	seen := map[string]bool{} // /bin is often /usr/bin
	for _, dir := range filepath.SplitList(searchPath(b.env(nil))) {
		ents, _ := inroot.ReadDir(root, dir, maxPrograms)
		for _, e := range ents {
			if !e.IsDir() && !seen[e.Name()] {
				seen[e.Name()] = true
				out = append(out, e.Name())
			}
		}
	}
	return out
}

// LookPath finds a program as `exec NAME` would, from the host: through
// /proc/PID/root, each directory resolved inside the box's root. A
// symlink counts as found, unfollowed.
func (b *Box) LookPath(name string) (string, error) {
	root := fmt.Sprintf("/proc/%d/root", b.CommandPID())
	path := searchPath(b.env(nil))
	for _, dir := range filepath.SplitList(path) {
		st, err := inroot.Lstat(root, filepath.Join(dir, name))
		if t := st.Mode & unix.S_IFMT; err == nil && (t == unix.S_IFLNK || t == unix.S_IFREG && st.Mode&0o111 != 0) {
			return filepath.Join(dir, name), nil
		}
	}
	return "", fmt.Errorf("exec: %q: command not found in the box (PATH=%s)", name, path)
}
