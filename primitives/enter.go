package primitives

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
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
	self, _ := os.Stat("/proc/self/ns/user")
	var first, user, rest []NamespaceType
	for _, t := range types {
		switch {
		case t.Name == "user":
			user = append(user, t)
		case self != nil && ownedElsewhere(nsOwner(enterNamespaceFile(pid, t), false), userInode(self)):
			// Owned by the box's user namespace: joined from inside it,
			// where the entering process holds capabilities (rootless,
			// it holds none in the session's).
			rest = append(rest, t)
		default:
			first = append(first, t)
		}
	}
	return append(append(first, user...), rest...)
}

// ownedElsewhere: a namespace whose owner the kernel named (not 0) and
// which is not the session's own user namespace.
func ownedElsewhere(owner, own uint32) bool { return owner != 0 && owner != own }

func userInode(fi os.FileInfo) uint32 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint32(st.Ino)
	}
	return 0
}

// enterJoin is what `enter` joins besides the namespaces: the box's
// cgroup and its settings, as `docker exec` does (runc exec joins the
// container's cgroup and applies its capabilities, no_new_privs and
// seccomp to the new process).
type enterJoin struct {
	cgroups  []string // cgroup.procs files of the box's cgroup, one per hierarchy
	where    string   // the cgroups those are, in words (boxCgroups.words)
	security Security
	ids      *IDs     // the image's User, as exec runs its commands; nil: root
	env      []string // the command's environment: the image's Env too, as exec's
	dir      string   // the image's WorkingDir, as exec's; "": the box's root
}

// enterRecord is the record `enter` writes, and its plan: the cgroup,
// the setns calls in order, joining a user namespace becoming its root,
// and the box's settings; codes holds, for each call, the enter
// process's step number for it (executor.h, XENTER_*, XSEC_STEP_*).
func enterRecord(pid int, types []NamespaceType, j enterJoin, path string, argv []string, verb string) (*step.Step, []int) {
	st := &step.Step{
		Command: "enter",
		Summary: fmt.Sprintf("%s PID %d's %s from the host%s, then %s %s there%s%s with the box's capabilities, no_new_privs and seccomp settings", verb, pid, namespaceList(types),
			map[bool]string{true: " and " + j.where, false: ", staying in " + j.where}[len(j.cgroups) > 0], map[string]string{"joined": "ran", "will join": "will run"}[verb], step.ShellJoin(argv), inDir(joinsType(types, "mnt"), j.dir), asUser(j.ids)),
		Man:  []string{"setns(2)", "nsenter(1)", "capabilities(7)"},
		Undo: "nothing to undo: the entered command ends, the box stays",
	}
	var codes []int
	plan := func(code int, call string) {
		st.Plan(call)
		codes = append(codes, code)
	}
	opts := []string{"nsenter", "-t", fmt.Sprint(pid)}
	for _, f := range j.cgroups {
		plan(secStepCgroup, fmt.Sprintf("write(open(%s), \"0\", 1)   # into the box's cgroup first, as the host's root", step.Quote(f)))
	}
	if joinsUser(types) && os.Geteuid() == 0 {
		// Before the setns calls, as the host's root: inside a user
		// namespace whose setgroups file says "deny" it is refused.
		plan(enterSetgroups, "setgroups(0, NULL)   # the host's supplementary groups go, before joining")
	}
	for i, t := range types {
		short := t.Short
		if t.Name == "time" {
			short = "--time=" + enterNamespaceFile(pid, t) // -T alone takes /proc/PID/ns/time
		}
		opts = append(opts, short)
		plan(i+1, fmt.Sprintf("setns(%d<%s>, %s)", i+3+len(j.cgroups), enterNamespaceFile(pid, t), step.CloneFlags(t.Flag)))
	}
	if joinsUser(types) {
		plan(enterSetresgid, "setresgid(0, 0, 0)")
		plan(enterSetresuid, "setresuid(0, 0, 0)")
	}
	plan(enterFork, "clone(child_stack=NULL, flags=SIGCHLD)   # fork: a PID namespace joined applies to children")
	plan(enterSetsid, setsidCall)
	if joinsType(types, "mnt") {
		// setns(CLONE_NEWNS) leaves the command at the namespace's root,
		// the host's files after the box's chroot: it takes the box's
		// own, where its path was looked up (enterPath) and where exec's
		// commands run (their executor is chrooted), as nsenter --root.
		status := 3 + len(j.cgroups) + len(types)
		plan(enterFchdir, fmt.Sprintf("fchdir(%d</proc/%d/root>)   # the box's root, opened with its namespace files: setns(CLONE_NEWNS) left it at the namespace's root", status+2, pid))
		plan(enterChroot, `chroot(".")   # the box's root is the command's /, as its own commands' is, after pivot_root or chroot`)
		// nsenter --wd opens its directory before joining, in the host's
		// root; --wdns resolves it in the new root (nsenter(1)). Without
		// either, a newer nsenter --root goes back to the caller's cwd.
		opts = append(opts, "--root", "--wdns="+step.ShellJoin([]string{orSlash(j.dir)}))
	}
	if j.dir != "" {
		// Where exec's commands start, resolved inside the box; made
		// first, from the host through os.Root, when missing (makeWorkingDir).
		plan(enterChdir, fmt.Sprintf("chdir(%s)   # the image's WorkingDir, in the box's root, as exec starts its commands", step.Quote(j.dir)))
	}
	for _, c := range securityCalls(j.security, j.ids) {
		switch c.code {
		case spawnStepSetgroups:
			if joinsUser(types) && os.Geteuid() == 0 {
				continue // dropped before joining
			}
			c.code = enterIDsSetgroups
		case spawnStepSetresgid:
			c.code = enterIDsSetresgid
		case spawnStepSetresuid:
			c.code = enterIDsSetresuid
		}
		plan(c.code, c.call)
	}
	if j.ids != nil {
		opts = append(opts, "-S", fmt.Sprint(j.ids.UID), "-G", fmt.Sprint(j.ids.GID))
	}
	// The environment is the command's alone: the enter process started
	// with stepbox's, and reads this one from a memfd (XENTER_ENV).
	plan(enterExecve, fmt.Sprintf("execve(%s, %s, envp)   # envp: the command's environment, read from a memfd; the enter process itself has stepbox's", step.Quote(path), quoteArgv(argv)))
	shell := strings.Join(opts, " ") + " " + step.ShellJoin(argv)
	if !j.security.empty() {
		shell = strings.Join(opts, " ") + " " + strings.Replace(securityShell(j.security), "CMD", step.ShellJoin(argv), 1)
	}
	st.Shell = []string{shell}
	return st, codes
}

// enterJoinOf is what `enter` joins of box b besides its namespaces: its
// cgroup in each hierarchy where its command process is (read from the
// host, /proc/PID/cgroup), and its settings.
//
// The image's User and Env come only with the box's mount namespace: in
// the host's, the command is a host program, and an image's LD_PRELOAD
// or PATH would run the image's code there (exec holds to the same rule).
func (b *Box) enterJoinOf(pid int, types []NamespaceType) enterJoin {
	b.mu.Lock()
	j := enterJoin{security: b.security.clone(), env: b.env(nil)}
	if joinsType(types, "mnt") {
		a := b.execArgs(nil, nil)
		j.ids, j.env, j.dir = a.User, a.Env, a.Dir
	}
	b.mu.Unlock()
	// The learner's cgroup, and stepbox's own that holds the box from
	// `new` (box_track.go): the command joins whichever the box's process
	// is in, so it counts against the same limits and teardown finds it.
	c := b.cgroupsOf(pid)
	for _, d := range append(c.ownIn, c.trackedIn...) {
		j.cgroups = append(j.cgroups, filepath.Join(d.Path, "cgroup.procs"))
	}
	j.where = c.words()
	return j
}

// EnterJoins is what a process `enter TYPE…` starts joins of box b, as
// Enter joins it, for what stepbox says before it hands the learner's
// terminal over: the namespaces, the box's user namespace bringing all
// its own (withUserNamespace), in canonical order, and the cgroups it
// writes itself into, in words. Its settings are the box's, always.
func (b *Box) EnterJoins(types []NamespaceType) (namespaces []string, cgroup string) {
	types = b.withUserNamespace(types)
	return namespaceNames(types), b.enterJoinOf(b.CommandPID(), types).where
}

// namespaceNames are the names of types in canonical order.
func namespaceNames(types []NamespaceType) []string {
	var names []string
	for _, t := range SortNamespaces(types) {
		names = append(names, t.Name)
	}
	return names
}

// namespaceList names the namespaces of types in canonical order, as
// `uts, mnt, pid namespaces`.
func namespaceList(types []NamespaceType) string {
	names := namespaceNames(types)
	return strings.Join(names, ", ") + " " + step.Plural(len(names), "namespace")
}

// readProcCgroups maps each hierarchy of /proc/PID/cgroup ("" in v2) to
// the process's cgroup there.
func readProcCgroups(pid int) (map[string]string, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) == 3 {
			out[f[1]] = f[2]
		}
	}
	return out, nil
}

// withUserNamespace adds the box's user namespace, when it has one, to
// what `enter` joins: the entered command then holds capabilities only
// there, never the host's (docker exec does the same). With it go all
// the box's other namespaces of its own: a process with the box's
// identity (its uid, its capabilities, dumpable after execve) sitting in
// a namespace of the host's would hand the box that namespace, through
// /proc/PID/root or ptrace, as `enter uts -- sleep 9` once handed a
// Docker-hardened box the host's files.
func (b *Box) withUserNamespace(types []NamespaceType) []NamespaceType {
	if !b.Has("user") {
		return types
	}
	have := map[string]bool{}
	for _, t := range types {
		have[t.Name] = true
	}
	for _, t := range NamespaceTypes {
		if b.Has(t.Name) && !have[t.Name] {
			types = append(types, t)
		}
	}
	return types
}

// enterPath finds the command as it will be seen: in the box's files
// when `enter` joins its mount namespace, whose root (/proc/PID/root) the
// command then takes (XENTER_BOXROOT), else in the host's.
func enterPath(pid int, types []NamespaceType, name string, env []string) (string, error) {
	root := "/"
	for _, t := range types {
		if t.Name == "mnt" {
			root = fmt.Sprintf("/proc/%d/root", pid)
		}
	}
	return lookPath(root, name, env)
}

// enterNamespaceFile is the file of the namespace of type t that `enter`
// joins for the box whose commands start from pid: /proc/PID/ns/TYPE,
// but for time, time_for_children. `unshare time` moves only the
// children of the process that calls it (time_namespaces(7)): a box
// without PID 1 keeps the host's clocks itself, and its commands read
// the box's; entered, a command reads what they read.
func enterNamespaceFile(pid int, t NamespaceType) string {
	name := t.Proc
	if t.Name == "time" {
		name = "time_for_children"
	}
	return fmt.Sprintf("/proc/%d/ns/%s", pid, name)
}

func joinsUser(types []NamespaceType) bool { return joinsType(types, "user") }

func joinsType(types []NamespaceType, name string) bool {
	for _, t := range types {
		if t.Name == name {
			return true
		}
	}
	return false
}

// PlanEnter is the record `enter TYPE… -- CMD…` will write.
func (b *Box) PlanEnter(types []NamespaceType, argv []string) (*step.Step, error) {
	pid := b.CommandPID()
	types = enterOrder(pid, b.withUserNamespace(types))
	j := b.enterJoinOf(pid, types)
	path, err := enterPath(pid, types, argv[0], j.env)
	if err != nil {
		path = argv[0]
	}
	st, _ := enterRecord(pid, types, j, path, argv, "will join")
	return st, nil
}

// Enter runs argv in the box's namespaces of the given types, joined from
// the host with setns(2) by a fresh stepbox process whose constructor
// (executor.c, enter) does the joining before the Go runtime starts, as
// `nsenter -t PID -m -p -u CMD` does; single-threaded, it may join a user
// or time namespace too. The session stays where it is.
func (b *Box) Enter(ctx context.Context, types []NamespaceType, argv []string, std Stdio) (ExitStatus, *step.Step, error) {
	// A box that killed its own box process is gone, as exec says: its
	// zombie has no namespace files to open. (A box whose executor went
	// silent may still be entered, to see why.)
	var gone *BoxGoneError
	if err := b.Alive(); errors.As(err, &gone) {
		return ExitStatus{}, nil, err
	}
	pid, start := b.commandProc()
	types = enterOrder(pid, b.withUserNamespace(types))
	j := b.enterJoinOf(pid, types)
	if err := b.CheckCommandIDs("enter", j.ids); err != nil {
		return ExitStatus{}, nil, err
	}
	env := j.env
	path, err := enterPath(pid, types, argv[0], env)
	st, codes := enterRecord(pid, types, j, path, argv, "joined")
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
	sec := "-"
	if !j.security.empty() {
		sec = j.security.wire()
	}
	flags := 0
	args := []string{"stepbox", entryEnter, "", strconv.Itoa(3 + len(j.cgroups) + len(types)), strconv.Itoa(len(j.cgroups)), sec}
	for _, p := range j.cgroups {
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return ExitStatus{}, st, fmt.Errorf("enter: the box's cgroup: %w", err)
		}
		files = append(files, f)
	}
	for _, t := range types {
		f, err := os.Open(enterNamespaceFile(pid, t))
		if err != nil {
			return ExitStatus{}, st, fmt.Errorf("enter: %w", err)
		}
		files = append(files, f)
		args = append(args, strconv.Itoa(int(t.Flag)))
	}
	// The box's root, opened with its namespace files: the same
	// process's, checked below. The command takes it after joining the
	// mount namespace, as nsenter --root does.
	var boxRoot *os.File
	if joinsType(types, "mnt") {
		if boxRoot, err = os.Open(fmt.Sprintf("/proc/%d/root", pid)); err != nil {
			return ExitStatus{}, st, fmt.Errorf("enter: the box's root: %w", err)
		}
		defer boxRoot.Close()
	}
	// Still the box's process once its namespace files are open: a PID
	// that had ended and been reused would have handed `enter` another
	// process's namespaces.
	if err := stillTheProcess(pid, start); err != nil {
		return ExitStatus{}, st, fmt.Errorf("enter: box %s: %w", b.Name, err)
	}
	if j.dir != "" {
		// The WorkingDir is only the image's with the mount namespace
		// (enterJoinOf), so boxRoot is open: reopened through its own
		// descriptor, it is the very root the command will take.
		root, err := os.OpenRoot(fmt.Sprintf("/proc/self/fd/%d", boxRoot.Fd()))
		if err != nil {
			return ExitStatus{}, st, fmt.Errorf("enter %s: the image's WorkingDir %s: %w", argv[0], j.dir, err)
		}
		defer root.Close()
		// Made where it is missing, as exec makes it (runc does too);
		// the enter process's chdir then resolves it inside the box.
		if err := makeWorkingDir(root, j.dir); err != nil {
			return ExitStatus{}, st, fmt.Errorf("enter %s: the image's WorkingDir %s: %w", argv[0], j.dir, err)
		}
	}
	// Without the box's PID namespace the command is a process of the
	// host's, which the box's PID 1 does not take with it (box_pidns.go).
	if !joinsType(types, "pid") || pid != b.InitPID() {
		b.mu.Lock()
		err := b.hostPIDCommand()
		b.mu.Unlock()
		if err != nil {
			return ExitStatus{}, st, fmt.Errorf("enter: %w", err)
		}
	}
	if joinsUser(types) {
		flags |= enterRoot
		if os.Geteuid() == 0 {
			flags |= enterNoGroups
		}
	}
	flags |= enterEnv
	args = append(args, "--", j.dir, path)
	args = append(args, argv...)
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return ExitStatus{}, st, err
	}
	defer statusR.Close()
	files = append(files, statusW)
	// The command's environment goes beside the status descriptor: the
	// enter process starts on the host's side, where the host's loader
	// would honour an image's LD_PRELOAD or LD_LIBRARY_PATH (ut27 F1).
	envf, err := environFile(env)
	if err != nil {
		return ExitStatus{}, st, fmt.Errorf("enter: %w", err)
	}
	files = append(files, envf)
	if boxRoot != nil {
		files = append(files, boxRoot) // STATUS+2
		flags |= enterBoxRoot
	}
	// From the sealed copy (selfexe.go): once in the box's namespaces,
	// its /proc/<PID>/exe must not lead to the host's binary.
	exe, err := SelfExePath()
	if err != nil {
		return ExitStatus{}, st, fmt.Errorf("enter: %w", err)
	}
	// Not exec.CommandContext: its cancel kills the enter process alone,
	// after WaitDelay, which leaves a stopped command (and its group)
	// behind; cancelEnter kills the command (ut33 F3).
	cmd := exec.Command(exe)
	cmd.Args = args
	cmd.Env = b.markerEnv()
	var tty *boxTerminal
	if std.Terminal != nil {
		tty, err = openBoxTerminal(std.Terminal)
		if err != nil {
			return ExitStatus{}, st, fmt.Errorf("enter: %w", err)
		}
		defer tty.close()
		if err := tty.relay(); err != nil {
			return ExitStatus{}, st, fmt.Errorf("enter: %w", err)
		}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = tty.slave, tty.slave, tty.slave
		flags |= enterCtty
	} else {
		var flush func()
		if std, flush, err = guardStdio(std); err != nil {
			return ExitStatus{}, st, fmt.Errorf("enter: %w", err)
		}
		defer flush() // after Wait, which waits for the copies
		cmd.Stdout, cmd.Stderr = std.Out, std.Err
		// A nil *os.File in the io.Reader would be a closed fd 0, which
		// the command's first open(2) takes; nil is os/exec's /dev/null.
		if std.In != nil {
			cmd.Stdin = std.In
		}
	}
	cmd.Args[2] = enterFlags(flags, j.ids)
	cmd.ExtraFiles = files
	cmd.WaitDelay = 2 * time.Second
	unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err := cmd.Start(); err != nil {
		return ExitStatus{}, st, fmt.Errorf("enter: %w", err)
	}
	closeAll(files)
	files = nil
	if tty != nil {
		tty.closeSlave()
		waited := make(chan struct{})
		defer close(waited)
		go func() {
			select {
			case <-tty.Detached():
				// The enter process (our child, not yet waited for) kills
				// the command's process group (executor.c, detach).
				cmd.Process.Signal(unix.SIGUSR1)
			case <-waited:
			}
		}()
	}
	ended := make(chan struct{})
	var got atomic.Value // the terminal's signal it took (syscall.Signal)
	cancelled := make(chan struct{})
	go func() {
		defer close(cancelled)
		got.Store(cancelEnter(ctx, cmd.Process, std.Signals, ended))
	}()
	// The command is the enter process's only child.
	// Ending a stopped one is the enter process's detach: SIGKILL to the
	// command's process group (executor_enter.c), as Ctrl-C's.
	var endedStopped *StoppedCommand
	unwatch := watchCommandStopped(func() int { return childOf(cmd.Process.Pid) }, std, func() { cmd.Process.Signal(unix.SIGUSR1) }, &endedStopped)
	err = cmd.Wait()
	unwatch()
	close(ended)
	<-cancelled
	if errors.Is(err, exec.ErrWaitDelay) {
		// The command exited; something it left still held the output
		// pipe, which was cut after WaitDelay.
		err = nil
	}
	var waited *syscall.WaitStatus
	var passed syscall.Signal
	for {
		var msg [2]int32
		if binary.Read(statusR, binary.NativeEndian, &msg) != nil {
			break
		}
		switch msg[0] {
		case enterWaited:
			ws := syscall.WaitStatus(msg[1])
			waited = &ws
		case enterPassed:
			passed = syscall.Signal(msg[1])
		default:
			// The enter process reported a failed call: no command ran.
			return ExitStatus{}, st, enterFailure(st, codes, types, msg[0], unix.Errno(msg[1]))
		}
	}
	markRun(st.Calls)
	var es ExitStatus
	var ee *exec.ExitError
	switch {
	case waited != nil:
		// The command's own wait status, as the enter process read it: its
		// exit code alone (128+N for a command killed by signal N) would
		// make a shell that exited with status 130 look killed by SIGINT.
		es = exitStatusOf(*waited)
	case errors.As(err, &ee):
		// The enter process sent no wait status: it was killed before its
		// command ended.
		es = ExitStatus{Code: ee.ExitCode()}
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			es = exitStatusOf(ws)
		}
	case err != nil:
		return ExitStatus{}, st, fmt.Errorf("enter: %w", err)
	}
	if passed == 0 {
		// The enter process was ended before it could say (or the
		// session's copy was the only one).
		passed, _ = got.Load().(syscall.Signal)
	}
	if passed != 0 && es.Code != 0 {
		es.PassedOn = unix.SignalName(passed)
	}
	if waited != nil && waited.Signaled() {
		es.EndedStopped = endedBy(endedStopped, waited.Signal())
	}
	if tty != nil && es.Code != 0 {
		select {
		case <-tty.Detached():
			es.Detached = true
		default:
		}
	}
	return es, st, nil
}

// exitStatusOf is how a process ended, from its wait status.
func exitStatusOf(ws syscall.WaitStatus) ExitStatus {
	if ws.Signaled() {
		return ExitStatus{Code: 128 + int(ws.Signal()), Signal: unix.SignalName(ws.Signal())}
	}
	return ExitStatus{Code: ws.ExitStatus()}
}

// enterFlags is the FLAGS argument of `stepbox __enter`: the flags, and
// with an image's User its ids.
func enterFlags(flags int, ids *IDs) string {
	if ids == nil {
		return strconv.Itoa(flags)
	}
	return fmt.Sprintf("%d:%d:%d", flags|enterIDs, ids.UID, ids.GID)
}

// environFile is env as the enter process reads it (XENTER_ENV): the
// strings, each ending in a NUL, in a memfd. Refused past what the enter
// process takes, which is about what execve(2) takes (E2BIG).
func environFile(env []string) (*os.File, error) {
	var buf []byte
	for _, e := range env {
		buf = append(append(buf, e...), 0)
	}
	if len(buf) > enterMaxEnv || len(env) > maxArgs {
		return nil, fmt.Errorf("the command's environment is %d bytes in %d variables: more than %d bytes or %d variables, which is all execve(2) would take", len(buf), len(env), enterMaxEnv, maxArgs)
	}
	fd, err := unix.MemfdCreate("stepbox-enter-env", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("the command's environment: memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "stepbox-enter-env")
	if _, err := f.Write(buf); err != nil {
		f.Close()
		return nil, fmt.Errorf("the command's environment: write to its memfd: %w", err)
	}
	return f, nil
}

// asUser says whose ids the entered command runs with.
func asUser(ids *IDs) string {
	if ids == nil {
		return ""
	}
	return fmt.Sprintf(" as the image's User (uid %d, gid %d), as exec runs it", ids.UID, ids.GID)
}

// inDir says where the entered command starts: with the box's mount
// namespace (mnt), in its root, in the image's WorkingDir if any.
func inDir(mnt bool, dir string) string {
	switch {
	case !mnt:
		return ""
	case dir == "":
		return " in the box's root"
	}
	return " in the image's WorkingDir " + dir + " in the box's root"
}

// markRun gives every call of a record whose command ran the result 0.
func markRun(calls []step.Call) {
	for i := range calls {
		calls[i].Result = "0"
	}
}

// enterFailure records which call of the enter process failed, by its
// step number (codes, from enterRecord), and says why.
func enterFailure(st *step.Step, codes []int, types []NamespaceType, n int32, errno unix.Errno) error {
	idx := slices.Index(codes, int(n))
	if idx < 0 {
		return fmt.Errorf("enter: the enter process failed at step %d: %w", n, errno)
	}
	markRun(st.Calls[:idx])
	st.Calls[idx].Result = step.Result(errno)
	call := st.Calls[idx].Syscall
	if n >= 1 && int(n) <= len(types) {
		return fmt.Errorf("enter: %w (%s)", &step.SyscallError{Call: call, Err: errno}, setnsHint(types[n-1], errno))
	}
	if n == enterEnviron {
		return fmt.Errorf("enter: the enter process could not read the command's environment from its descriptor: %w", errno)
	}
	if n == enterChdir {
		return fmt.Errorf("enter: the image's WorkingDir: %w", &step.SyscallError{Call: call, Err: errno})
	}
	if n == enterFchdir || n == enterChroot {
		return fmt.Errorf("enter: the box's root: %w", &step.SyscallError{Call: call, Err: errno})
	}
	if n == enterTIOCSCTTY {
		return fmt.Errorf("enter: %w", &step.SyscallError{Call: "ioctl(0, TIOCSCTTY, 0)", Err: errno})
	}
	if n >= secStepDecode {
		return fmt.Errorf("enter: %w", securityError(call, errno))
	}
	return fmt.Errorf("enter: %w", &step.SyscallError{Call: call, Err: errno})
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

// cancelEnter ends an enter process's command as exec's cancel ends
// exec's (endCommand): on ctx's end, SIGINT to the enter process, which
// passes it on to the command's process group; on the terminal's Ctrl-C
// (a SIGINT on sigs: the enter process, in stepbox's process group, got
// its own copy and passed it on), nothing more to ask. Either way, a
// command that has not ended within cancelGrace (a stopped one never
// will) is killed: SIGUSR1 makes the enter process send SIGKILL to the
// command's process group (executor_enter.c, detach). It returns the
// terminal's signal it took from sigs, if any, until ended.
func cancelEnter(ctx context.Context, p *os.Process, sigs <-chan os.Signal, ended <-chan struct{}) syscall.Signal {
	var took syscall.Signal
	for {
		select {
		case <-ended:
			return took
		case <-ctx.Done():
			endCommand(ended, func() { p.Signal(unix.SIGINT) }, func() { p.Signal(unix.SIGUSR1) })
			return took
		case s := <-sigs:
			sig, _ := s.(syscall.Signal)
			if took == 0 || sig == unix.SIGINT {
				took = sig
			}
			if sig == unix.SIGINT {
				endCommand(ended, func() {}, func() { p.Signal(unix.SIGUSR1) })
				return took
			}
		}
	}
}
