package primitives

import (
	"errors"
	"fmt"
	"math"
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
// offsets, lo up, a PID 1, or the user maps. With plan, nothing runs: it
// writes the record the step will write (explain), from the same code.
//
// What can be refused before unshare(2) is (a user namespace's block of
// host IDs, clock offsets). A follow-up refused after it is undone where
// the kernel lets the box leave its new namespace (undoUnshare): the
// session holds the namespace the executor had (or its children had, for
// pid and time) from before the unshare, and the executor setns(2)s back
// into it.
func (b *Box) unshareOne(x *executor, st *step.Step, t NamespaceType, opts UnshareOptions, plan bool) error {
	do := recorderFor(st, plan)
	var old *os.File
	if !plan && t.Name != "user" {
		// Best effort: without it the undo is refused and says why.
		old, _ = os.Open(x.Proc() + "/ns/" + changedNS(t))
		if old != nil {
			defer old.Close()
		}
	}
	if !plan && t.Name == "user" && os.Geteuid() == 0 {
		// Claimed first: a user namespace cannot be left, so a box must
		// not make one it has no IDs to map.
		if _, err := b.boxIDs(); err != nil {
			return err // unshareFailed names the step
		}
	}
	call := fmt.Sprintf("unshare(%s)", step.CloneFlags(t.Flag))
	if err := do(call, func() error { return x.Unshare(t.Flag) }); err != nil {
		return err // the kernel made nothing
	}
	err := b.afterUnshare(x, st, t, opts, plan, do)
	if err != nil && !plan {
		return b.undoUnshare(x, st, t, old, err)
	}
	return err
}

// changedNS is the /proc/PID/ns entry unshare(2) of t changes for the
// caller: pid and time change only what its children get.
func changedNS(t NamespaceType) string {
	if t.Name == "pid" || t.Name == "time" {
		return t.Proc + "_for_children"
	}
	return t.Proc
}

// afterUnshare is what type t needs right after its unshare(2).
func (b *Box) afterUnshare(x *executor, st *step.Step, t NamespaceType, opts UnshareOptions, plan bool, do recorder) error {
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

// offsetLine is an offset as timens_offsets takes it: seconds, and
// nanoseconds from 0 to 999999999 (a negative fraction is refused with
// EINVAL), so -1.5s is "-2 500000000".
func offsetLine(clock string, d time.Duration) string {
	sec := int64(d / time.Second)
	nsec := int64(d % time.Second)
	if nsec < 0 {
		sec, nsec = sec-1, nsec+int64(time.Second)
	}
	return fmt.Sprintf("%s %d %d\n", clock, sec, nsec)
}

// ktimeSecMax is KTIME_SEC_MAX (include/linux/time64.h), the seconds of
// the largest ktime_t.
const ktimeSecMax = math.MaxInt64 / int64(time.Second)

// checkTimeOffsets refuses, before anything is unshared, the offsets the
// kernel would refuse once the new time namespace exists: it takes one
// only when the clock it shifts, the host's now plus the offset, stays
// from 0 to KTIME_SEC_MAX/2 seconds, about 146 years, "to be sure that
// KTIME_MAX is still unreachable" (proc_timens_set_offset in
// kernel/time/namespace.c; time_namespaces(7)). The kernel also bounds
// the offset itself by ±KTIME_SEC_MAX seconds, which these bounds keep.
func checkTimeOffsets(opts UnshareOptions) error {
	for _, c := range []struct {
		name  string
		clock int32
		d     time.Duration
	}{{"monotonic", unix.CLOCK_MONOTONIC, opts.Monotonic}, {"boottime", unix.CLOCK_BOOTTIME, opts.Boottime}} {
		if c.d == 0 {
			continue
		}
		now, err := hostClock(c.clock, c.name)
		if err != nil {
			return err
		}
		lo := -now
		hi := time.Duration(ktimeSecMax/2+1)*time.Second - 1 - now
		if c.d >= lo && c.d <= hi {
			continue
		}
		would := "go below 0"
		if c.d > hi {
			would = fmt.Sprintf("pass %ds", ktimeSecMax/2)
		}
		return fmt.Errorf("unshare time --%s %s: the box's %s clock, now %s, would %s; the kernel keeps a shifted clock from 0 to KTIME_SEC_MAX/2 = %ds, about 146 years (time_namespaces(7)): give --%s from %s to %s",
			c.name, c.d, c.name, now.Truncate(time.Second), would, ktimeSecMax/2, c.name, lo.Truncate(time.Second), hi.Truncate(time.Second))
	}
	return nil
}

// hostClock is clock as the kernel checks an offset against it: the
// host's, which a session in a time namespace of its own reads shifted by
// that namespace's offsets (its /proc/self/timens_offsets).
func hostClock(clock int32, name string) (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(clock, &ts); err != nil {
		return 0, fmt.Errorf("unshare time: clock_gettime(CLOCK_%s): %w", strings.ToUpper(name), err)
	}
	now := time.Duration(ts.Nano())
	data, _ := os.ReadFile("/proc/self/timens_offsets")
	for _, line := range strings.Split(string(data), "\n") {
		var c string
		var sec, nsec int64
		if n, _ := fmt.Sscanf(line, "%s %d %d", &c, &sec, &nsec); n == 3 && c == name {
			now -= time.Duration(sec)*time.Second + time.Duration(nsec)
		}
	}
	return now, nil
}

// namespaceKept is a step's error once its unshare(2) could not be
// undone: the box has the new namespace, and its state must say so.
type namespaceKept struct{ error }

func (e *namespaceKept) Unwrap() error { return e.error }

// undoUnshare takes the box back to the namespace of type t it had
// before the step, once the follow-up of the new one's unshare(2) failed
// with cause, so that a failed step leaves it as it was: the executor
// setns(2)s into old, held open from before the unshare. For pid and
// time, unshare changed only what the executor's children get (no
// process entered the new namespace, which is freed). The kernel refuses
// that setns to a box in a user namespace of its own, which has no
// CAP_SYS_ADMIN over the host's namespaces, and a user namespace cannot
// be left at all (setns(2) enters no ancestor). Then the box keeps what
// the kernel gave it, and its state, `ns` and the prompt say so; where
// the new namespace is not fit to keep without its follow-up (a mount
// tree that still propagates to the host's, a PID namespace with no PID
// 1, a user namespace with no maps), the box is marked broken: it takes
// no more steps, and `rm` tears it down.
func (b *Box) undoUnshare(x *executor, st *step.Step, t NamespaceType, old *os.File, cause error) error {
	var kept *namespaceKept
	if errors.As(cause, &kept) {
		return cause // the follow-up got far enough to keep (forkInit)
	}
	err := errors.New("a user namespace cannot be left: setns(2) enters no ancestor of the caller's (user_namespaces(7))")
	if t.Name != "user" {
		err = fmt.Errorf("the session could not open the box's %s namespace before the step", changedNS(t))
	}
	if old != nil {
		var cwd string
		if t.Name == "mnt" {
			// setns into a mount namespace moves the caller to its root
			// (setns(2)); before `unshare mnt` the box's root is the
			// host's, and its working directory goes back as it was.
			cwd, _ = os.Readlink(x.Proc() + "/cwd")
		}
		err = st.Do(fmt.Sprintf("setns(%s, %s)   # undo: back to the %s namespace the box had, held open since before the unshare",
			old.Name(), step.CloneFlags(t.Flag), t.Name), func() error { return x.Setns(old, int(t.Flag)) })
		if err == nil && cwd != "" && cwd != "/" {
			if err := st.Do(fmt.Sprintf("chdir(%q)   # undo: its working directory", cwd), func() error { return x.Chdir(cwd) }); err != nil {
				return fmt.Errorf("%w; box %s is back in the mnt namespace it had, but in / rather than %s (%v)", cause, b.Name, cwd, err)
			}
		}
	}
	if err == nil {
		return fmt.Errorf("%w; box %s is back in the %s namespace it had, as before the step", cause, b.Name, t.Name)
	}
	refused := err.Error()
	if errno := step.Errno(err); errno != 0 {
		refused = fmt.Sprintf("setns(2) into the %s namespace it had: %s (%s)", t.Name, unix.ErrnoName(errno), errno.Error())
		if errno == unix.EPERM && b.unshared["user"] {
			refused += ", as a box in a user namespace of its own has no CAP_SYS_ADMIN over the host's namespaces"
		}
	}
	why := map[string]string{
		"mnt":  "a mount namespace whose mounts still propagate to the host's (it could not be made a slave)",
		"pid":  "a PID namespace with no PID 1 (the next process it forked would become PID 1 instead)",
		"user": "a user namespace without its maps (the box's root is nobody there)",
	}[t.Name]
	if why != "" {
		// Said without the syscall: every later command of the box
		// answers with it.
		if b.dead == nil {
			b.dead = fmt.Errorf("box %s is broken: a failed `unshare %s` left its box process in %s, which it may not leave; the box takes no more steps, `rm %s` tears it down",
				b.Name, t.Name, why, b.Name)
		}
		return &namespaceKept{fmt.Errorf("%w; the kernel refused the way back (%s): %w", cause, refused, b.dead)}
	}
	with := map[string]string{
		"time": ", with its clocks unshifted",
		"net":  ", with lo down (`exec ip link set lo up` brings it up)",
	}[t.Name]
	return &namespaceKept{fmt.Errorf("%w; box %s keeps the new %s namespace%s, as the kernel refused the way back (%s); `ns` shows it", cause, b.Name, t.Name, with, refused)}
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
// until `rm`. Once the fork is made, an error keeps the namespace
// (namespaceKept): its PID 1 is the box's, in the ledger.
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
		return &namespaceKept{x.distrust(opForkInit, err)}
	}
	st.Calls[len(st.Calls)-1].Result = fmt.Sprint(pid)
	st.Shell = append(st.Shell, forkInitShell)
	st.Notes = append(st.Notes, fmt.Sprintf("PID %d on the host is PID 1 in the box: it stays alive as the box's init, and later steps and commands start from it", pid))
	b.ledger.Add(Resource{Kind: ResProcess, PID: pid, Start: child.start, Note: "PID 1"})
	c, err := newConn(mine)
	if err != nil {
		return &namespaceKept{err}
	}
	init := &executor{b: b, c: c, pid: pid}
	self, err := init.hello()
	if err != nil {
		c.close()
		return &namespaceKept{fmt.Errorf("PID 1 did not answer: %w", err)}
	}
	if self != 1 {
		c.close()
		return &namespaceKept{fmt.Errorf("the new init is PID %d in its namespace, not 1", self)}
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
