package primitives

import (
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"stepbox/primitives/step"
)

// recorder performs a call and records it (step.Do), or, in a plan,
// records it as not run (step.Plan).
type recorder func(call string, fn func() error) error

func recorderFor(st *step.Step, plan bool) recorder {
	if plan {
		return func(call string, _ func() error) error { st.Plan(call); return nil }
	}
	return st.Do
}

// unshareOne moves the box's executor x into a new namespace of type t,
// with what the type needs right after: a slave mount tree, clock
// offsets, lo up, or a PID 1. With plan, nothing runs: it writes the
// record the step will write (explain), from the same code.
func (b *Box) unshareOne(x *executor, st *step.Step, t NamespaceType, opts UnshareOptions, plan bool) error {
	do := recorderFor(st, plan)
	call := fmt.Sprintf("unshare(%s)", step.CloneFlags(t.Flag))
	if err := do(call, func() error { return x.Unshare(t.Flag) }); err != nil {
		return err
	}
	switch t.Name {
	case "pid":
		if plan {
			st.Plan(forkInitCall)
			st.Shell = append(st.Shell, forkInitShell)
			st.Notes = append(st.Notes, "the child becomes PID 1 in the box: it stays alive as the box's init, and later steps and commands start from it")
			return nil
		}
		return b.forkInit(x, st)
	case "user":
		var proc string
		if x != nil {
			proc = x.Proc()
		} else {
			proc = fmt.Sprintf("/proc/%d", b.CommandPID())
		}
		return mapUser(b, x, proc, st, plan)
	}
	st.Shell = append(st.Shell, "unshare "+t.Option+" sh   # a shell in a new "+t.Name+" namespace")
	switch t.Name {
	case "mnt":
		// A new mount namespace starts as a copy whose mounts still
		// share propagation with the host's (systemd makes / shared):
		// make it a slave before anything is mounted, so nothing the box
		// mounts reaches the host (mount_namespaces(7), "Shared subtrees").
		flags := uintptr(unix.MS_REC | unix.MS_SLAVE)
		if err := do(step.MountCall("none", "/", "", flags, ""), func() error { return x.Mount("none", "/", "", flags, "") }); err != nil {
			return err
		}
		st.Shell = append(st.Shell, "mount --make-rslave /")
		st.Man = append(st.Man, "mount(2)")
	case "time":
		// In a user namespace of its own, a root session's box process
		// runs as a host uid of its block, and /proc/self of a process
		// that is not dumpable belongs to the host's root: the session
		// writes the offsets from the host's side, which holds
		// CAP_SYS_TIME over every user namespace.
		// (Unshare holds b.mu while it runs the step; a plan does not.)
		file := "/proc/self/timens_offsets"
		if x != nil && os.Geteuid() == 0 && b.unshared["user"] {
			file = x.Proc() + "/timens_offsets"
		} else if x == nil && os.Geteuid() == 0 && b.Has("user") {
			file = fmt.Sprintf("/proc/%d/timens_offsets", b.CommandPID())
		}
		return writeTimeOffsets(x, st, do, file, opts.Boottime, opts.Monotonic)
	case "net":
		return loopbackUp(x, st, do)
	}
	return nil
}

// writeTimeOffsets sets the clocks of the new time namespace. The kernel
// accepts offsets only until the first process enters it
// (time_namespaces(7)), so this runs right after unshare. The executor
// forks without CLONE_VM, so this works before Linux 6.3 as well, where
// clone(CLONE_VM) is refused while time_for_children differs.
func writeTimeOffsets(x *executor, st *step.Step, do recorder, file string, boottime, monotonic time.Duration) error {
	var lines []string
	if monotonic != 0 {
		lines = append(lines, offsetLine("monotonic", monotonic))
	}
	if boottime != 0 {
		lines = append(lines, offsetLine("boottime", boottime))
	}
	for _, line := range lines {
		call, self := fmt.Sprintf("write(%q, %q, %d)", file, line, len(line)), file == "/proc/self/timens_offsets"
		if !self {
			call += "   # by the session, from the host's side"
		}
		err := do(call, func() error {
			if self {
				return x.WriteFile(file, line)
			}
			return os.WriteFile(file, []byte(line), 0)
		})
		if err != nil {
			return err
		}
		st.Shell = append(st.Shell, fmt.Sprintf("echo '%s' > %s", strings.TrimSpace(line), file))
	}
	if len(lines) == 0 {
		st.Notes = append(st.Notes, "no clock offsets given: the box's clocks read like the host's until you pass --boottime or --monotonic")
	}
	st.Notes = append(st.Notes, "the time namespace applies to the box's children (time_for_children): the box process itself keeps the host's clocks")
	return nil
}

func offsetLine(clock string, d time.Duration) string {
	sec := int64(d / time.Second)
	nsec := int64(d % time.Second)
	return fmt.Sprintf("%s %d %d\n", clock, sec, nsec)
}

// What forkInit records, and its plan.
const (
	forkInitCall  = "clone(child_stack=NULL, flags=SIGCHLD)   # fork: the child is PID 1 in the new namespace"
	forkInitShell = "unshare --pid --fork --mount-proc sh   # --fork: only children enter the new PID namespace"
)

// forkInit starts the box's PID 1 after unshare(CLONE_NEWPID): the
// executor forks, and the child, the first process of the new namespace,
// runs the same op loop as a minimal init (executor.c): it reaps every
// child, forwards signals to the command it runs, and starts every later
// step and command, as `unshare --fork` does. It is forked, not exec'd,
// so it needs nothing from the box's root: `unshare pid` works after
// pivot_root. A PID namespace dies with its PID 1, so this one lives
// until `rm`.
func (b *Box) forkInit(x *executor, st *step.Step) error {
	mine, theirs, err := socketpair()
	if err != nil {
		return err
	}
	pid, err := func() (int, error) {
		defer theirs.Close()
		r, err := x.do(opForkInit, nil, nil, theirs)
		if err != nil {
			return 0, err
		}
		return int(r.Val), r.errno()
	}()
	st.Record(forkInitCall, err)
	if err != nil {
		mine.Close()
		return &step.SyscallError{Call: "clone(flags=SIGCHLD)", Err: err}
	}
	// The PID is the executor's word: PID 1 must be, on the host's
	// /proc, the executor's child and PID 1 of a namespace of its own,
	// before the session shields it, joins it or ends it by that PID.
	child, err := verifyChild(pid, x.pid, 1)
	if err != nil {
		mine.Close()
		return x.distrust(opForkInit, err)
	}
	st.Calls[len(st.Calls)-1].Result = fmt.Sprint(pid)
	st.Shell = append(st.Shell, forkInitShell)
	st.Notes = append(st.Notes, fmt.Sprintf("PID %d on the host is PID 1 in the box: it stays alive as the box's init, and later steps and commands start from it", pid))
	b.ledger.Add(Resource{Kind: ResProcess, PID: pid, Start: child.start, Note: "PID 1"})
	c, err := newConn(mine)
	if err != nil {
		return err
	}
	init := &executor{b: b, c: c, pid: pid}
	self, err := init.hello()
	if err != nil {
		c.close()
		return fmt.Errorf("unshare pid: PID 1 did not answer: %w", err)
	}
	if self != 1 {
		c.close()
		return fmt.Errorf("unshare pid: the new init is PID %d in its namespace, not 1", self)
	}
	b.init, b.initPID, b.initStart = init, pid, child.start
	b.shieldFromOOM(pid)
	if b.oomNote != "" {
		st.Notes = append(st.Notes, b.oomNote)
	}
	return nil
}

// loopbackUp brings up lo in the new network namespace, as container
// runtimes do: a new namespace has only lo, and it starts down
// (network_namespaces(7)).
func loopbackUp(x *executor, st *step.Step, do recorder) error {
	err := do(`ioctl(3, SIOCSIFFLAGS, {ifr_name="lo", ifr_flags=IFF_UP|IFF_LOOPBACK|IFF_RUNNING})`, func() error {
		return x.LinkUp("lo")
	})
	if err == nil {
		st.Shell = append(st.Shell, "ip link set lo up")
		st.Notes = append(st.Notes, "a new network namespace has only a loopback device, down until brought up; stepbox brings it up as container runtimes do")
	}
	return err
}
