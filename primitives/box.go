package primitives

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"stepbox/primitives/cgroups"
	"stepbox/primitives/rootfs"
	"stepbox/primitives/step"
)

// Box is a container under construction: a box process (and, after
// `unshare pid`, its PID 1) holding the namespaces, mounts and cgroup the
// learner's steps gave it.
type Box struct {
	Name    string
	ID      string // 12 hex digits, like a short container ID
	User    bool   // started in a user namespace of its own
	Created time.Time
	Dir     string // the box's state directory

	session *Session
	ledger  *Ledger
	proc    *os.Process

	mu        sync.Mutex
	pid       int    // host PID of the box process
	initPID   int    // host PID of PID 1, once `unshare pid` made one
	start     uint64 // start times of the box process and PID 1 (verify.go)
	initStart uint64
	box       *executor // the box process
	init      *executor // its PID 1, after `unshare pid`
	oomNote   string    // why the box's init is not shielded from the OOM killer
	// The oom_score_adj the box's commands get: 0, or 1000 where the init
	// could not be shielded (see shieldFromOOM).
	commandOOM string
	unshared   map[string]bool
	hostname   string
	dead       error
	cgroup     *cgroups.Group
	devices    boxDevices      // the device program of a v2 cgroup (box_devices.go)
	tracked    *cgroups.Group  // stepbox's own cgroup of the box (box_track.go)
	ledgered   map[string]nsID // its namespaces written to the ledger (box_namespaces.go)
	hostPID    bool            // a command of it started in the host's PID namespace (box_pidns.go)
	// escapable is CouldEscape's answer, kept where it can be read
	// without b.mu, which a running command's step holds: the session's
	// end reads it before it ends that command (noteEscape).
	escapable atomic.Bool
	upperSize int64         // the size of its upper tmpfs, 0 without one (box_upper.go)
	upperRoot *os.File      // that tmpfs, held open until teardown (unmountHeld)
	ids       *idBlockClaim // a root session's block of host IDs for its user namespaces (idblock.go)
	fs        BoxFS
	// kept are the detached mounts a box with a user namespace took, in
	// the executor keptIn, as its root moved (box_fs.go): what its `mount
	// dev` and `mount sys` attach afterwards.
	kept     *rootfs.Kept
	keptIn   *executor
	process  ProcessDefaults // from the image the overlay stacks (box_image.go)
	security Security        // what its next commands get (security.go)
	// seccompOlder are the box's processes that ran when its seccomp
	// filter last changed: none of them has that filter, whatever its
	// own filters (olderProcesses, ut34 F11).
	seccompOlder []procStamp

	net boxNet // its veth, address, route, published ports (net.go)
}

// NewBox starts a box process in the host's namespaces, or with --user in
// a new user namespace created with it, mapping uid 0 to the caller: the
// shortcut for `new` then `unshare user` as an ordinary user. Rootless,
// every box is made so (rootless.go).
func (s *Session) NewBox(name string, user bool) (*Box, *step.Step, error) {
	user = user || Rootless()
	if s.closing.Load() {
		return nil, nil, fmt.Errorf("new %s: %w", name, errClosing)
	}
	if err := ValidBoxName(name); err != nil {
		return nil, nil, err
	}
	room, err := s.roomForNew()
	if err != nil {
		return nil, nil, fmt.Errorf("new %s: %w", name, err)
	}
	s.mu.Lock()
	if _, ok := s.boxes[name]; ok {
		s.mu.Unlock()
		return nil, nil, fmt.Errorf("a box called %q exists already: pick another name, or `rm %s` first", name, name)
	}
	if err := roomForBox(name, len(s.boxes), room); err != nil {
		s.mu.Unlock()
		return nil, nil, err
	}
	// Reserve the name while the box starts.
	s.boxes[name] = nil
	s.mu.Unlock()
	b, st, err := s.startBox(name, user)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		delete(s.boxes, name)
		return nil, st, err
	}
	s.boxes[name] = b
	s.order = append(s.order, name)
	return b, st, nil
}

func newID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Session) startBox(name string, user bool) (*Box, *step.Step, error) {
	b := &Box{Name: name, ID: newID(), User: user, Created: time.Now(), session: s,
		Dir: filepath.Join(s.Dir, "boxes", name), unshared: map[string]bool{}}
	l, err := openLedger(b.Dir)
	if err != nil {
		return nil, nil, err
	}
	b.ledger = l
	if err := l.Add(Resource{Kind: ResProcesses, Box: name, Note: "every process carrying " + envBox + "=" + name}); err != nil {
		return nil, nil, err
	}
	st := newRecord(name, user)
	if err := b.spawn(st, false); err != nil {
		// The box ran no command (spawn's ops fork nothing), so the only
		// process that can carry its markers is the box process itself,
		// ended here by its pidfd; its tracking cgroup holds the rest.
		// No scan of every process's environment, which a fork bomb in
		// another box can stall for minutes (mmap_lock).
		if b.proc != nil {
			b.proc.Kill()
			b.proc.Wait()
		}
		teardownLedgerWith(b.Dir, func(string) []pidStart { return nil }, nil)
		if b.upperRoot != nil {
			b.upperRoot.Close() // the unmounted tmpfs goes with it
		}
		b.releaseUpper()
		b.ids.release()
		return nil, st, err
	}
	return b, st, nil
}

// boxExecve is the execve(2) of a box process, for its record and plan.
func boxExecve(name string) string {
	exe, err := SelfExePath()
	if err != nil {
		exe = "/proc/self/fd/N"
	}
	from, _ := selfExeFrom()
	return fmt.Sprintf("execve(%q, [\"stepbox\", %q, %q], …)   # %s", exe, entryBox, name, from)
}

// shieldFromOOM asks the OOM killer to take the box process or PID 1 last.
// When the box's memory limit is hit by something the OOM killer cannot
// pin on a process (tmpfs pages), the process that starts the box's
// commands would otherwise be chosen and the whole box would die; like
// containerd's shim, it goes last (proc(5), oom_score_adj). The session
// writes it from outside: inside a user namespace the box could not.
// Without CAP_SYS_RESOURCE (a sandboxed root) it may not go below 0;
// then the commands volunteer instead, at 1000, as Kubernetes marks
// best-effort pods: raising needs no privilege.
func (b *Box) shieldFromOOM(pid int) {
	b.commandOOM = "0"
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid), []byte("-999"), 0); err != nil {
		b.commandOOM = "1000"
		b.oomNote = "this host refused the box's oom_score_adj -999 for PID 1 (lowering it needs CAP_SYS_RESOURCE): " +
			"the commands PID 1 starts get oom_score_adj 1000 instead, so at the box's memory limit the OOM killer takes them before PID 1"
	}
}

// lendOOMScore sets the executor's oom_score_adj to the commands' for the
// fork of one (a child inherits it at fork), and returns what sets it
// back. Neither way needs CAP_SYS_RESOURCE: -999 was set with it, and
// 1000 goes back to the 0 the executor started with, its
// oom_score_adj_min (proc(5)).
func (b *Box) lendOOMScore(pid int) func() {
	file := fmt.Sprintf("/proc/%d/oom_score_adj", pid)
	old, err := os.ReadFile(file)
	if b.commandOOM == "" || err != nil || strings.TrimSpace(string(old)) == b.commandOOM {
		return func() {}
	}
	if os.WriteFile(file, []byte(b.commandOOM), 0) != nil {
		return func() {}
	}
	return func() { os.WriteFile(file, old, 0) }
}

// env is the environment of box processes and container processes: a
// plain PATH and the markers teardown and the sweep look for.
func (b *Box) env(extra []string) []string {
	term := os.Getenv("TERM")
	if term == "" {
		term = "xterm"
	}
	e := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root",
		"TERM=" + term,
	}
	e = append(e, extra...)
	return mergeEnv(append(e, b.markerEnv()...))
}

// markerEnv is the whole environment of a helper stepbox starts for a box
// on the host's side (`enter`'s process): the markers by which teardown
// and the sweep know it, nothing of the box's or the image's.
func (b *Box) markerEnv() []string {
	return []string{envSession + "=" + b.session.ID, envBox + "=" + b.Name, envPIDNS + "=" + ownPIDNS}
}

// PID is the host PID of the box process.
func (b *Box) PID() int { b.mu.Lock(); defer b.mu.Unlock(); return b.pid }

// InitPID is the host PID of the box's PID 1, or 0 before `unshare pid`.
func (b *Box) InitPID() int { b.mu.Lock(); defer b.mu.Unlock(); return b.initPID }

// CommandPID is where container processes start: PID 1 if there is one,
// else the box process. It is $BOX_PID.
func (b *Box) CommandPID() int {
	pid, _ := b.commandProc()
	return pid
}

// commandProc is CommandPID with the process's start time.
func (b *Box) commandProc() (int, uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.initPID != 0 {
		return b.initPID, b.initStart
	}
	return b.pid, b.start
}

// HostRoot is the box's root directory as the host can reach it: the
// root of its command process, through /proc (proc(5), /proc/PID/root).
func (b *Box) HostRoot() string {
	root := fmt.Sprintf("/proc/%d/root", b.CommandPID())
	if f := b.FS(); f.Merged != "" && !f.Pivoted && !f.Chrooted {
		// Before the box changes its root, its overlay is a mount point in
		// its own mount namespace: reach it through that namespace's root.
		return root + f.Merged
	}
	return root
}

// Hostname is the name last set with `hostname`, or "".
func (b *Box) Hostname() string { b.mu.Lock(); defer b.mu.Unlock(); return b.hostname }

// Has reports whether the box has its own namespace of the given type.
func (b *Box) Has(ns string) bool { b.mu.Lock(); defer b.mu.Unlock(); return b.unshared[ns] }

// Unshared lists the namespace types the box has made, in canonical order.
func (b *Box) Unshared() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, t := range NamespaceTypes {
		if b.unshared[t.Name] {
			out = append(out, t.Name)
		}
	}
	return out
}

// active is the executor that applies steps now: PID 1 once it exists.
func (b *Box) active() *executor {
	if b.init != nil {
		return b.init
	}
	return b.box
}

// withKernel runs a step on the executor that applies steps now, with
// the box locked: one op at a time on its socket.
func (b *Box) withKernel(do func(x *executor) (*step.Step, error)) (*step.Step, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dead != nil {
		return nil, b.dead
	}
	return do(b.active())
}

// UnshareOptions carries `unshare time`'s clock offsets.
type UnshareOptions struct {
	Boottime, Monotonic time.Duration
}

// Unshare moves the box into new namespaces of the given types. A type
// the box has already is refused before anything changes.
func (b *Box) Unshare(types []NamespaceType, opts UnshareOptions) (*step.Step, error) {
	types = SortNamespaces(types)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dead != nil {
		return nil, b.dead
	}
	x := b.active()
	var names []string
	for _, t := range types {
		if b.unshared[t.Name] {
			if err := b.unshareAgain(x, t); err != nil {
				return nil, err
			}
		}
		names = append(names, t.Name)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("unshare: nothing to do")
	}
	return b.unshareStep(x, types, opts, false)
}

// unshareStep moves the box's executor x into a new namespace of each
// type and writes the record; with plan, x is nil and nothing runs: the
// record the step will write (explain), from the same code. b.mu is held
// unless plan.
func (b *Box) unshareStep(x *executor, types []NamespaceType, opts UnshareOptions, plan bool) (*step.Step, error) {
	var names []string
	for _, t := range types {
		names = append(names, t.Name)
	}
	// Offsets the kernel would refuse are refused before any namespace
	// is made.
	if slices.Contains(names, "time") {
		if err := checkTimeOffsets(opts); err != nil {
			return nil, err
		}
	}
	st := &step.Step{Command: "unshare " + strings.Join(names, " ")}
	for i, t := range types {
		st.Man = append(st.Man, t.Man)
		err := b.unshareOne(x, st, t, opts, plan)
		if !plan {
			b.recordNamespaces()
		}
		var kept *namespaceKept
		if !plan && errors.As(err, &kept) {
			b.unshared[t.Name] = true
			b.noteEscape()
		}
		if err != nil && !plan {
			return st, b.unshareFailed(st.Command, names[:i], t.Name, names[i+1:], err)
		}
		if err != nil {
			return st, err
		}
		if !plan {
			b.unshared[t.Name] = true
			b.noteEscape()
		}
	}
	st.Tell("moved the box process into new namespaces: "+strings.Join(names, ", "),
		"will move the box process into new namespaces: "+strings.Join(names, ", "))
	st.Undo = unshareUndo
	st.Man = append(st.Man, "unshare(2)", "namespaces(7)")
	return st, nil
}

// unshareFailed is the error of step cmd once its type failed with err,
// after the types done and before the types left. The types done are
// kept, not undone: a new user namespace, which comes first, cannot be
// left, and the others stay as the kernel made them, recorded, so that
// the box's state, the prompt, `ns` and teardown agree with the kernel
// whichever type fails. What became of the failed one err says.
func (b *Box) unshareFailed(cmd string, done []string, failed string, left []string, err error) error {
	msg := err.Error()
	switch {
	case len(done)+len(left) > 0:
		msg = cmd + ": " + failed + ": " + msg
	case !strings.HasPrefix(msg, cmd+": "):
		msg = cmd + ": " + msg
	}
	if len(done) > 0 {
		msg += fmt.Sprintf("; the %s before it %s made and kept: box %s has its new %s (`ns` shows them)",
			step.Plural(len(done), "type"), map[bool]string{true: "was", false: "were"}[len(done) == 1], b.Name, strings.Join(done, ", "))
	}
	if len(left) > 0 {
		msg += "; not unshared: " + strings.Join(left, ", ")
	}
	return &unshareError{msg: msg, err: err}
}

// unshareError is a failed unshare's error, with its cause to unwrap
// (a *step.SyscallError, a *namespaceKept).
type unshareError struct {
	msg string
	err error
}

func (e *unshareError) Error() string { return e.msg }
func (e *unshareError) Unwrap() error { return e.err }

// PlanUnshare is the record `unshare TYPE…` will write for the box.
func (b *Box) PlanUnshare(types []NamespaceType, opts UnshareOptions) (*step.Step, error) {
	types = SortNamespaces(types)
	if len(types) == 0 {
		return nil, fmt.Errorf("unshare: nothing to do")
	}
	st, err := b.unshareStep(nil, types, opts, true)
	if err != nil {
		return nil, err
	}
	st.MarkNotRun()
	return st, nil
}

// unshareAgain allows a type the box has already only for cgroup, and
// only while the root of its cgroup namespace is not its cgroup: a
// namespace made before `cgroup attach` is rooted at the host's root, and
// a nested one made now is rooted at the box's cgroup
// (cgroup_namespaces(7)). b.mu is held.
func (b *Box) unshareAgain(x *executor, t NamespaceType) error {
	refused := fmt.Errorf("unshare %s: box %s has its own %s namespace already; each type can be unshared once (`ns` shows them)", t.Name, b.Name, t.Name)
	if t.Name != "cgroup" || x == nil {
		return refused
	}
	view, err := x.cgroupView()
	if err != nil {
		return fmt.Errorf("unshare cgroup: box %s: read /proc/self/cgroup: %w", b.Name, err)
	}
	for _, c := range view {
		if c.Path != "/" {
			return nil
		}
	}
	return fmt.Errorf("unshare cgroup: box %s has its own cgroup namespace already, rooted at its cgroup (/proc/self/cgroup shows / in every hierarchy): another would change nothing", b.Name)
}

const unshareUndo = "a namespace is freed when its last process exits and nothing holds it open: `rm` ends the box's processes"

// Sethostname sets the hostname inside the box. Without a UTS namespace
// of its own it would rename the host, so that is refused.
func (b *Box) Sethostname(name string) (*step.Step, error) {
	if !b.Has("uts") {
		return nil, fmt.Errorf("hostname %s: box %s shares the host's UTS namespace, so this would rename the host; run `unshare uts` first", step.Cut(name), b.Name)
	}
	if err := validHostname(name); err != nil {
		return nil, err
	}
	st, err := b.withKernel(func(x *executor) (*step.Step, error) { return sethostnameStep(x, name, false) })
	if err == nil {
		b.mu.Lock()
		b.hostname = name
		b.mu.Unlock()
	}
	return st, err
}

// PlanSethostname is the record `hostname NAME` will write.
func (b *Box) PlanSethostname(name string) (*step.Step, error) {
	if err := validHostname(name); err != nil {
		return nil, err
	}
	st, _ := sethostnameStep(nil, name, true)
	st.MarkNotRun()
	if !b.Has("uts") {
		st.Notes = append(st.Notes, "the box shares the host's UTS namespace: stepbox refuses this until `unshare uts`, since it would rename the host")
	}
	return st, nil
}

// validHostname refuses what the step and its plan both refuse. The
// kernel takes any bytes up to 64; a CR, ESC or NUL in a hostname reaches
// every prompt and log that prints it.
func validHostname(name string) error {
	if name == "" || len(name) > 64 || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r == '/' || r == 0x7f || r >= 0x80 && r <= 0x9f || r == 0xfffd }) {
		return fmt.Errorf("hostname %q: a hostname is 1 to 64 bytes (a letter like é takes 2) with no spaces, control characters or '/'", step.Cut(name))
	}
	return nil
}

// sethostnameStep names the UTS namespace of the box's executor x and
// writes the record; with plan, x is nil and nothing runs.
func sethostnameStep(x *executor, name string, plan bool) (*step.Step, error) {
	st := &step.Step{
		Command: "hostname " + name,
		Shell:   []string{"hostname " + name},
		Man:     []string{"sethostname(2)", "uts_namespaces(7)"},
		Undo:    "the UTS namespace, and the name with it, is freed when its last process exits",
	}
	st.Tell("set the hostname of the box's UTS namespace", "will set the hostname of the box's UTS namespace")
	do := recorderFor(st, plan)
	call := fmt.Sprintf("sethostname(%s, %d)", step.Quote(name), len(name))
	return st, do(call, func() error { return x.Sethostname(name) })
}

// teardown ends the box: its ledger undone in reverse order.
func (b *Box) teardown(marked func(box string) []pidStart) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	live := b.liveBox()
	if b.hostPID {
		// Read before anything ends: what is left in these afterwards
		// escaped every other way of finding it (escapees), with the
		// filesystems its root may be on.
		live.pin = pinNamespaces(b.pid, b.initPID)
		live.pin.pinRoots(b.Dir, live.upper, b.pid, b.initPID)
	}
	// And, while its processes still run, what of it left its cgroups for
	// others of the session's (box_strays.go).
	var mine, named []stray
	if b.hostPID {
		mine, named = b.strays(b.session.parentCgroup(), live.pin)
	}
	for _, x := range []*executor{b.init, b.box} {
		if x != nil {
			x.c.close()
		}
	}
	// PID 1 first, and without waiting: the kernel ends its namespace
	// while the session reaps the box process.
	killInit(live.init)
	if b.proc != nil {
		b.proc.Kill()
	}
	// Thawed after the signal, not before: a frozen process does not act
	// on SIGKILL until it is thawed (box_freeze.go), and one that has it
	// pending never runs the box's code again, so it freezes nothing
	// after this pass. A pass before the signal as well found nothing
	// this one does not, and cost rm a walk of the box's cgroups.
	terr := b.thaw()
	if b.proc != nil {
		// The box process is the session's child: kill and reap it first,
		// so no zombie of it keeps its cgroup busy.
		_, err := b.proc.Wait()
		if err != nil {
			// Wait closes Go's pidfd only when it succeeds.
			b.proc.Release()
		}
		live.reaped = err == nil
	}
	said, serr := endStrays(b.Name, mine, named)
	if marked == nil {
		marked = func(box string) []pidStart { return markedProcesses(b.session.ID, box) }
	}
	// What it ended is said. What it left alone it cannot tell from
	// another's (the box's processes were gone, so nothing pinned its
	// namespaces); the sweep after a crash names those.
	esc, err := teardownLedgerWith(b.Dir, marked, live)
	// Its upper tmpfs is unmounted: another box may have its room.
	b.releaseUpper()
	// Its processes are gone: another box may take its host IDs.
	b.ids.release()
	if said = append(said, esc.ended...); len(said) > 0 {
		err = errors.Join(err, errors.New(strings.Join(said, "; ")))
	}
	err = errors.Join(err, serr, terr)
	if b.dead == nil {
		b.dead = fmt.Errorf("box %s has been removed", b.Name)
	}
	return err
}
