package primitives

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"stepbox/primitives/cgroups"
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

	mu       sync.Mutex
	pid      int   // host PID of the box process
	initPID  int   // host PID of PID 1, once `unshare pid` made one
	ctl      *conn // the box process
	initCtl  *conn // PID 1
	unshared map[string]bool
	hostname string
	dead     error
	cgroup   *cgroups.Group
	fs       BoxFS

	net boxNet // its veth, address, route, published ports (net.go)
}

// NewBox starts a box process in the host's namespaces, or with --user in
// a new user namespace created with it (the only moment a Go program can
// make one: see errUnshareUser).
func (s *Session) NewBox(name string, user bool) (*Box, *step.Step, error) {
	if s.closing.Load() {
		return nil, nil, fmt.Errorf("new %s: %w", name, errClosing)
	}
	if err := ValidBoxName(name); err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	if _, ok := s.boxes[name]; ok {
		s.mu.Unlock()
		return nil, nil, fmt.Errorf("a box called %q exists already: pick another name, or `rm %s` first", name, name)
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
	st := &step.Step{
		Command: "new " + name,
		Summary: "started the box process: a copy of stepbox, locked to one thread, that will apply each step",
		Man:     []string{"clone(2)", "execve(2)"},
		Undo:    "`rm " + name + "` kills the box's processes; its namespaces die with them",
	}
	if err := b.spawn(st); err != nil {
		teardownLedger(b.Dir, s.ID)
		return nil, st, err
	}
	return b, st, nil
}

func (b *Box) spawn(st *step.Step) error {
	mine, theirs, err := socketpair()
	if err != nil {
		return err
	}
	defer theirs.Close()
	logf, err := os.OpenFile(filepath.Join(b.Dir, "agent.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		mine.Close()
		return err
	}
	defer logf.Close()
	attr := &syscall.SysProcAttr{
		Setpgid:   true, // Ctrl-C at the terminal must not reach box processes
		Pdeathsig: syscall.SIGKILL,
	}
	flags := "SIGCHLD"
	if !b.User {
		st.Shell = append(st.Shell, newBoxShell)
	}
	if b.User {
		uid, gid := os.Getuid(), os.Getgid()
		attr.Cloneflags = unix.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}}
		// An unprivileged writer of gid_map must deny setgroups(2) first
		// (user_namespaces(7), "Interaction with system calls changing process GIDs").
		attr.GidMappingsEnableSetgroups = false
		flags = "CLONE_NEWUSER|SIGCHLD"
		b.unshared["user"] = true
		st.Shell = append(st.Shell, "unshare --user --map-root-user sh")
		st.Man = append(st.Man, "user_namespaces(7)")
		st.Notes = append(st.Notes, fmt.Sprintf("uid 0 in the box is uid %d on the host (uid_map \"0 %d 1\"), gid 0 is gid %d", uid, uid, gid))
	}
	// go-prompt opens /dev/tty without O_CLOEXEC: no descriptor of the
	// session's may reach a box (close_range(2), CLOSE_RANGE_CLOEXEC).
	unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	// One P is all a box process needs (it serves one request at a time),
	// and fewer runtime threads leave more of a pids.max limit to the
	// learner's processes: every thread counts as a task. Without
	// containermaxprocs=0 the Go runtime keeps the host's cpu.cfs_*
	// files open, reachable from inside the box through /proc/1/fd.
	p, err := os.StartProcess(selfExe, []string{"stepbox", entryBox, b.Name}, &os.ProcAttr{
		Env:   b.env([]string{"GOMAXPROCS=1", "GODEBUG=containermaxprocs=0"}),
		Files: []*os.File{nil, nil, logf, theirs},
		Sys:   attr,
	})
	st.Record(fmt.Sprintf("clone(child_stack=NULL, flags=%s)", flags), err)
	if err != nil {
		mine.Close()
		return &step.SyscallError{Call: "clone(flags=" + flags + ")", Err: err}
	}
	st.Calls[len(st.Calls)-1].Result = fmt.Sprint(p.Pid)
	st.Calls = append(st.Calls, step.Call{Syscall: fmt.Sprintf("execve(\"/proc/self/exe\", [\"stepbox\", %q, %q], …)", entryBox, b.Name), Result: "0"})
	b.proc = p
	b.pid = p.Pid
	start, _ := startTime(p.Pid)
	if err := b.ledger.Add(Resource{Kind: ResProcess, PID: p.Pid, Start: start, Note: "box process"}); err != nil {
		p.Kill()
		mine.Close()
		return err
	}
	c, err := newConn(mine)
	if err != nil {
		return err
	}
	b.ctl = c
	var hello helloResult
	if _, err := b.callOn(c, "hello", nil, &hello); err != nil {
		return fmt.Errorf("new %s: the box process did not answer: %w (see %s)", b.Name, err, filepath.Join(b.Dir, "agent.log"))
	}
	st.Notes = append(st.Notes, fmt.Sprintf("box process: PID %d, in the host's namespaces%s", p.Pid, map[bool]string{true: " except a new user namespace", false: ""}[b.User]))
	return nil
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
		envSession + "=" + b.session.ID,
		envBox + "=" + b.Name,
		envPIDNS + "=" + ownPIDNS,
	}
	return append(e, extra...)
}

// PID is the host PID of the box process.
func (b *Box) PID() int { b.mu.Lock(); defer b.mu.Unlock(); return b.pid }

// InitPID is the host PID of the box's PID 1, or 0 before `unshare pid`.
func (b *Box) InitPID() int { b.mu.Lock(); defer b.mu.Unlock(); return b.initPID }

// CommandPID is where container processes start: PID 1 if there is one,
// else the box process. It is $BOX_PID.
func (b *Box) CommandPID() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.initPID != 0 {
		return b.initPID
	}
	return b.pid
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

// active is the process that applies steps now: PID 1 once it exists.
func (b *Box) active() *conn {
	if b.initCtl != nil {
		return b.initCtl
	}
	return b.ctl
}

// Call sends one op to the process that applies the box's steps and
// decodes its result into out (which may be nil). Other packages' steps
// reach the box process through here.
func (b *Box) Call(op string, args any, out any) (*step.Step, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dead != nil {
		return nil, b.dead
	}
	return b.callOn(b.active(), op, args, out)
}

func (b *Box) callOn(c *conn, op string, args any, out any, files ...*os.File) (*step.Step, error) {
	resp, got, err := b.roundTrip(c, op, args, files...)
	closeAll(got)
	if err != nil {
		return nil, err
	}
	if out != nil && resp.Data != nil {
		if err := json.Unmarshal(resp.Data, out); err != nil {
			return resp.Step, err
		}
	}
	return resp.Step, resp.error()
}

func (b *Box) roundTrip(c *conn, op string, args any, files ...*os.File) (response, []*os.File, error) {
	if b.session.closing.Load() {
		return response{}, nil, errClosing
	}
	var raw json.RawMessage
	if args != nil {
		var err error
		if raw, err = json.Marshal(args); err != nil {
			return response{}, nil, err
		}
	}
	if err := c.send(request{Op: op, Args: raw}, files...); err != nil {
		return response{}, nil, b.died(err)
	}
	var resp response
	got, err := c.recv(&resp)
	if err != nil {
		return response{}, nil, b.died(err)
	}
	return resp, got, nil
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
	var names []string
	for _, t := range types {
		if t.Name == "user" {
			return nil, errUnshareUser
		}
		if b.unshared[t.Name] {
			return nil, fmt.Errorf("unshare %s: box %s has its own %s namespace already; each type can be unshared once (`ns` shows them)", t.Name, b.Name, t.Name)
		}
		if t.Name == "time" {
			if err := timeNamespaceForks(); err != nil {
				return nil, err
			}
		}
		if t.Name == "pid" && (b.fs.Pivoted || b.fs.Chrooted) {
			return nil, fmt.Errorf("unshare pid: do it before pivot_root or chroot: the box's PID 1 is started from stepbox's own binary, which the new root no longer holds")
		}
		names = append(names, t.Name)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("unshare: nothing to do")
	}
	args := unshareArgs{Types: names, Boottime: opts.Boottime, Monotonic: opts.Monotonic, Box: b.Name}
	resp, got, err := b.roundTrip(b.active(), "unshare", args)
	if err != nil {
		return nil, err
	}
	var res unshareResult
	if resp.Data != nil {
		json.Unmarshal(resp.Data, &res)
	}
	// Record what did happen even when a later type failed.
	for _, c := range callsOK(resp.Step) {
		for _, t := range types {
			if strings.Contains(c, step.CloneFlags(t.Flag)) {
				b.unshared[t.Name] = true
			}
		}
	}
	if err := resp.error(); err != nil {
		closeAll(got)
		return resp.Step, err
	}
	if res.InitPID != 0 {
		if len(got) != 1 {
			closeAll(got)
			return resp.Step, fmt.Errorf("unshare pid: the box process sent no socket for PID 1")
		}
		start, _ := startTime(res.InitPID)
		b.ledger.Add(Resource{Kind: ResProcess, PID: res.InitPID, Start: start, Note: "PID 1"})
		c, err := newConn(got[0])
		if err != nil {
			return resp.Step, err
		}
		var hello helloResult
		if _, err := b.callOn(c, "hello", nil, &hello); err != nil {
			return resp.Step, fmt.Errorf("unshare pid: PID 1 did not answer: %w", err)
		}
		if hello.PID != 1 {
			return resp.Step, fmt.Errorf("unshare pid: the new init is PID %d in its namespace, not 1", hello.PID)
		}
		b.initCtl, b.initPID = c, res.InitPID
		if hello.OOMNote != "" && resp.Step != nil {
			resp.Step.Notes = append(resp.Step.Notes, hello.OOMNote)
		}
	} else {
		closeAll(got)
	}
	return resp.Step, nil
}

func callsOK(st *step.Step) []string {
	if st == nil {
		return nil
	}
	var out []string
	for _, c := range st.Calls {
		if c.Result == "0" {
			out = append(out, c.Syscall)
		}
	}
	return out
}

// Sethostname sets the hostname inside the box. Without a UTS namespace
// of its own it would rename the host, so that is refused.
func (b *Box) Sethostname(name string) (*step.Step, error) {
	if !b.Has("uts") {
		return nil, fmt.Errorf("hostname %s: box %s shares the host's UTS namespace, so this would rename the host; run `unshare uts` first", name, b.Name)
	}
	if name == "" || len(name) > 64 || strings.ContainsAny(name, " /\t\n") {
		return nil, fmt.Errorf("hostname %q: a hostname is 1 to 64 bytes (a letter like é takes 2) with no spaces or '/'", name)
	}
	st, err := b.Call("sethostname", hostnameArgs{Name: name}, nil)
	if err == nil {
		b.mu.Lock()
		b.hostname = name
		b.mu.Unlock()
	}
	return st, err
}

// teardown ends the box: its ledger undone in reverse order.
func (b *Box) teardown(marked func(box string) []pidStart) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range []*conn{b.initCtl, b.ctl} {
		if c != nil {
			c.close()
		}
	}
	if b.proc != nil {
		// The box process is the session's child: kill and reap it first,
		// so no zombie of it keeps its cgroup busy.
		b.proc.Kill()
		if _, err := b.proc.Wait(); err != nil {
			// Wait closes Go's pidfd only when it succeeds.
			b.proc.Release()
		}
	}
	if marked == nil {
		marked = func(box string) []pidStart { return markedProcesses(b.session.ID, box) }
	}
	err := teardownLedgerWith(b.Dir, marked)
	if b.dead == nil {
		b.dead = fmt.Errorf("box %s has been removed", b.Name)
	}
	return err
}

// timeNamespaceForks refuses `unshare time` where the kernel would then
// refuse every fork: before Linux 6.3, clone(CLONE_VM) fails with EINVAL
// while a process's time namespace for children differs from its own
// (fixed by "fs/exec: switch timens when a task gets a new mm"), and Go
// starts every process with CLONE_VM|CLONE_VFORK.
func timeNamespaceForks() error {
	rel := KernelRelease()
	if ReleaseAtLeast(rel, "6.3") {
		return nil
	}
	return fmt.Errorf("unshare time: this kernel (%s) refuses clone(CLONE_VM) while a new time namespace waits for the box's children, "+
		"and stepbox (Go) starts every process that way: every command in the box would fail with EINVAL; Linux 6.3 lifted the rule. "+
		"`unshare --time --fork` from util-linux shows the namespace on this kernel: it forks without CLONE_VM", rel)
}
