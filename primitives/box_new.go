package primitives

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"stepbox/primitives/cgroups"
	"stepbox/primitives/step"
)

// newRecord is the record of `new NAME` before its calls: the step's and
// its plan's. user: the box gets a user namespace (--user, or rootless,
// where every box does).
func newRecord(name string, user bool) *step.Step {
	st := &step.Step{
		Command: "new " + name,
		Man:     []string{"clone(2)", "execve(2)"},
		Undo:    "`rm " + name + "` kills the box's processes; its namespaces die with them",
	}
	if user {
		st.Command += " --user"
	}
	st.Tell("started the box process: stepbox's executor, one thread of C, that will apply each step",
		"will start the box process: stepbox's executor, one thread of C, that will apply each step")
	return st
}

// PlanNew is the record `new NAME [--user]` will write: spawn's own code
// for a box that is not started, with nothing run.
func (s *Session) PlanNew(name string, user bool) (*step.Step, error) {
	if err := ValidBoxName(name); err != nil {
		return nil, err
	}
	if _, err := s.Box(name); err == nil {
		return nil, fmt.Errorf("a box called %q exists already: pick another name, or `rm %s` first", name, name)
	}
	user = user || Rootless()
	st := newRecord(name, user)
	b := &Box{Name: name, User: user, session: s, unshared: map[string]bool{}}
	if err := b.spawn(st, true); err != nil {
		return nil, err
	}
	st.MarkNotRun()
	return st, nil
}

// spawn starts the box process and records it in st; with plan, it runs
// nothing and writes the record the step will write (explain): the
// calls, shell lines, man pages and notes come from this one function.
func (b *Box) spawn(st *step.Step, plan bool) error {
	do := recorderFor(st, plan)
	var sub subordinateMap
	mapped := false
	if b.User && !userNSAfterExec() {
		sub, mapped, _ = rootlessSubordinate()
	}
	flags := "SIGCHLD"
	if b.User && !userNSAfterExec() {
		flags = "CLONE_NEWUSER|SIGCHLD"
	}
	if !b.User {
		st.Shell = append(st.Shell, newBoxShell)
	}
	clone := fmt.Sprintf("clone(child_stack=NULL, flags=%s)", flags)
	var p *os.Process
	var mine, mapW *os.File
	if plan {
		st.Plan(clone)
	} else {
		var err error
		if p, mine, mapW, err = b.startProcess(st, clone, flags, mapped); err != nil {
			return err
		}
		if mapW != nil {
			defer mapW.Close()
		}
	}
	st.Calls = append(st.Calls, step.Call{Syscall: boxExecve(b.Name), Result: "0"})
	pid := "PID"
	if plan {
		st.Notes = append(st.Notes, fmt.Sprintf("stepbox will keep the box's processes in %s%s, a cgroup of its own, before the box runs anything: teardown ends everything in it; the box's own cgroup comes with `cgroup new`",
			b.Name, cgroups.TrackSuffix))
	} else {
		pid = strconv.Itoa(p.Pid)
		if err := b.ledger.Add(Resource{Kind: ResProcess, PID: p.Pid, Start: b.start, Note: "box process"}); err != nil {
			p.Kill()
			mine.Close()
			return err
		}
		// The executor waits for its first op: nothing of the box runs
		// before it is in its tracking cgroup.
		if err := b.track(st, p.Pid); err != nil {
			p.Kill()
			mine.Close()
			return err
		}
		// While the box process loads (its ELF interpreter, libc, the
		// constructor), its upper tmpfs is mounted and its OOM score set.
		var upper step.Step
		if err := b.mountUpper(&upper); err != nil {
			mine.Close()
			return err
		}
		defer func() { st.Notes = append(st.Notes, upper.Notes...) }()
		b.shieldFromOOM(p.Pid)
	}

	if mapped {
		if !plan {
			if _, err := io.ReadFull(mapW, make([]byte, 1)); err != nil {
				mine.Close()
				return fmt.Errorf("new %s: the box process did not get ready for its maps: %w", b.Name, err)
			}
		}
		for _, c := range subordinateCalls(sub, pid) {
			if err := do(c.call, c.do); err != nil {
				mine.Close()
				return fmt.Errorf("new %s: %w", b.Name, err)
			}
		}
		if !plan {
			// One byte: the maps are written, it executes itself again.
			if _, err := mapW.Write([]byte{1}); err != nil {
				mine.Close()
				return fmt.Errorf("new %s: write to the box process's map socket: %w", b.Name, err)
			}
			mapW.Close()
		}
		st.Calls = append(st.Calls, step.Call{Syscall: boxExecve(b.Name) + " again, now uid 0 of its user namespace", Result: "0"})
	}
	if !plan {
		c, err := newConn(mine)
		if err != nil {
			return err
		}
		b.box = &executor{b: b, c: c, pid: p.Pid}
		if _, err := b.box.hello(); err != nil {
			return fmt.Errorf("new %s: the box process did not answer: %w", b.Name, err)
		}
	}
	if b.User {
		if err := b.newUserNamespace(st, do, sub, mapped, plan); err != nil {
			return err
		}
	}
	if plan {
		return nil
	}
	// Orphans of the box's commands re-parent to the box process rather
	// than the host's init, so teardown finds them (PR_SET_CHILD_SUBREAPER).
	if err := b.box.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1); err != nil {
		return fmt.Errorf("new %s: prctl(PR_SET_CHILD_SUBREAPER) in the box process: %w", b.Name, err)
	}
	// Cloned without a namespace flag, the box process is in the
	// session's namespaces: only a user namespace of its own is recorded.
	if b.User {
		b.recordNamespaces()
	}
	st.Notes = append(st.Notes, fmt.Sprintf("box process: PID %d, in the host's namespaces%s", p.Pid, map[bool]string{true: " except a new user namespace", false: ""}[b.User]))
	return nil
}

// startProcess clones and executes the box process, recording the clone
// in st: the session's end of its socket and, where a rootless box is
// mapped through newuidmap, of the socket it waits on for its maps.
func (b *Box) startProcess(st *step.Step, clone, flags string, mapped bool) (p *os.Process, mine, mapW *os.File, err error) {
	mine, theirs, err := socketpair()
	if err != nil {
		return nil, nil, nil, err
	}
	attr := &syscall.SysProcAttr{
		Setpgid:   true, // Ctrl-C at the terminal must not reach box processes
		Pdeathsig: syscall.SIGKILL,
	}
	entry, files := entryBox, []*os.File{nil, nil, nil, theirs}
	if mapped {
		// Cloned unmapped: it says when it is ready for newuidmap
		// (subordinateCalls) and waits for the answer on a socket.
		w, mapR, err := socketpair()
		if err != nil {
			mine.Close()
			theirs.Close()
			return nil, nil, nil, err
		}
		mapW, entry, files = w, entryBoxMapped, append(files, mapR)
		attr.Cloneflags = unix.CLONE_NEWUSER
	} else if b.User && !userNSAfterExec() {
		uid, gid := os.Getuid(), os.Getgid()
		attr.Cloneflags = unix.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}}
		// An unprivileged writer of gid_map must deny setgroups(2) first
		// (user_namespaces(7), "Interaction with system calls changing process GIDs").
		attr.GidMappingsEnableSetgroups = false
	}
	fail := func(err error) (*os.Process, *os.File, *os.File, error) {
		mine.Close()
		if mapW != nil {
			mapW.Close()
		}
		return nil, nil, nil, err
	}
	// go-prompt opens /dev/tty without O_CLOEXEC: no descriptor of the
	// session's may reach a box (close_range(2), CLOSE_RANGE_CLOEXEC).
	unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	// The executor (executor.c) takes over in a constructor, before the Go
	// runtime starts: the box process has one thread and writes nothing.
	// It runs from a sealed copy of stepbox (selfexe.go), so the box's
	// /proc/<PID>/exe never leads to the host's binary.
	exe, err := SelfExePath()
	if err != nil {
		theirs.Close()
		if mapped {
			files[4].Close()
		}
		return fail(fmt.Errorf("new %s: %w", b.Name, err))
	}
	argv := []string{"stepbox", entryBox, b.Name}
	if entry == entryBoxMapped {
		argv = []string{"stepbox", entryBoxMapped, entryBox, b.Name}
	}
	p, err = os.StartProcess(exe, argv, &os.ProcAttr{
		Env:   b.env(nil),
		Files: files,
		Sys:   attr,
	})
	// The session keeps no copy of the box's ends: when the box process
	// dies, its sockets read EOF at once.
	theirs.Close()
	if mapped {
		files[4].Close()
	}
	st.Record(clone, err)
	if err != nil {
		return fail(&step.SyscallError{Call: "clone(flags=" + flags + ")", Err: err})
	}
	st.Calls[len(st.Calls)-1].Result = fmt.Sprint(p.Pid)
	b.proc = p
	b.pid = p.Pid
	b.start, _ = startTime(p.Pid)
	return p, mine, mapW, nil
}

// newUserNamespace is `new --user`'s user namespace, in the step and its
// plan: as root, made and mapped after execve as `unshare user` does;
// unprivileged, the one the box process was cloned into, its maps written
// by the kernel (one ID) or by newuidmap (a subordinate range).
func (b *Box) newUserNamespace(st *step.Step, do recorder, sub subordinateMap, mapped, plan bool) error {
	if !plan {
		b.unshared["user"] = true
		b.noteEscape()
	}
	if userNSAfterExec() {
		// As root: the box's own block of host IDs, as `unshare user` maps.
		var x *executor
		proc := "/proc/PID"
		if !plan {
			x, proc = b.box, b.box.Proc()
		}
		if err := do("unshare(CLONE_NEWUSER)", func() error { return x.Unshare(unix.CLONE_NEWUSER) }); err != nil {
			return fmt.Errorf("new %s --user: %w", b.Name, err)
		}
		if err := mapUser(b, x, proc, st, plan); err != nil {
			return fmt.Errorf("new %s --user: %w", b.Name, err)
		}
		return nil
	}
	uid, gid := os.Getuid(), os.Getgid()
	is, are := "is", "are"
	if plan {
		is, are = "will be", "will be"
	}
	st.Man = append(st.Man, "user_namespaces(7)")
	if mapped {
		st.Shell = append(st.Shell, "unshare --user --map-root-user --map-auto sh")
		st.Man = append(st.Man, "newuidmap(1)", "subuid(5)")
		st.Notes = append(st.Notes, fmt.Sprintf("uid 0 in the box %s uid %d on the host, uids 1-%d %s your range from %d (uid_map \"%s\"); gids likewise from gid %d and %d",
			is, uid, sub.uid.Count, are, sub.uid.Outside, sub.lines(uid, sub.uid), gid, sub.gid.Outside))
	} else {
		st.Shell = append(st.Shell, "unshare --user --map-root-user sh")
		st.Notes = append(st.Notes, fmt.Sprintf("uid 0 in the box %s uid %d on the host (uid_map \"0 %d 1\"), gid 0 %s gid %d", is, uid, uid, is, gid))
	}
	return nil
}

// newBoxShell is `new NAME` with standard tools: any new process starts in
// every namespace of its parent.
const newBoxShell = "sh   # a new process: it shares every namespace with the host until unshare"
