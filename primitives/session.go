package primitives

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"stepbox/primitives/cgroups"
	"stepbox/primitives/onefs"
	"stepbox/primitives/step"
)

// Dirs are where stepbox keeps its state: runtime state (sessions, boxes,
// ledgers) and layers.
type Dirs struct {
	Run string // default /run/stepbox
	Lib string // default /var/lib/stepbox
}

// State is the directory the learner knows stepbox's state by, which
// panels show as $STATE: the --state-dir (or $STEPBOX_STATE_DIR) that
// holds both dirs, else the runtime dir where boxes keep theirs.
func (d Dirs) State() string {
	if p := filepath.Dir(d.Run); filepath.Base(d.Run) == "run" && d.Lib == filepath.Join(p, "lib") {
		return p
	}
	return d.Run
}

// Session is the stepbox process the learner runs: it stays in the host's
// namespaces, owns the boxes and their ledgers, and tears them down.
type Session struct {
	Dirs Dirs
	ID   string // "<pid>-<start time>": a PID alone could be reused after a crash
	Dir  string // Dirs.Run/sessions/ID

	// closing is set when Close starts: from then on no step runs, so
	// nothing is made that the teardown under way would miss (a signal's
	// teardown runs beside the command the session is executing).
	closing atomic.Bool
	// hostPID: a command of one of its boxes started in the host's PID
	// namespace (box_pidns.go), so the session's end searches /proc.
	hostPID atomic.Bool
	// down serializes teardowns: a signal's and the script's own (which
	// tears down before it says so) must not race over the same boxes.
	down sync.Mutex

	mu     sync.Mutex
	boxes  map[string]*Box
	order  []string
	hier   cgroups.Hierarchy
	room   *roomTrees     // the cgroup trees `new` reads its room in (box_room.go)
	parent *cgroups.Group // stepbox's parent cgroup, made with the first box (box_track.go)
	upper  upperRoom      // what its boxes' upper tmpfs hold, and may (box_upper.go)
	// shown: a box of the session made a cgroup of the learner's (`cgroup
	// new`), so panels show the parent's tree.
	shown bool

	net netSession // the host side of the network steps (net.go)

	Swept SweepReport // what crashed sessions left, removed at the start

	// lock is the session's session.json, held flock(2)ed for its whole
	// life: what says it is alive, in any PID namespace (session_lock.go).
	lock *os.File
}

type sessionFile struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
	// PIDNS is the PID namespace (inode of /proc/self/ns/pid) the PIDs of
	// the session and its ledgers are PIDs of: in another, they name
	// other processes or none.
	PIDNS string `json:"pidns,omitempty"`
}

// OpenSession creates the session's state directory and, first, sweeps
// what crashed sessions left behind.
func OpenSession(dirs Dirs) (*Session, error) {
	pid := os.Getpid()
	start, err := startTime(pid)
	if err != nil {
		return nil, fmt.Errorf("read own start time: %w", err)
	}
	// From here on the real paths: a symlink on the way given is not
	// followed again.
	if dirs, err = dirs.makeTrusted(); err != nil {
		return nil, err
	}
	s := &Session{Dirs: dirs, ID: fmt.Sprintf("%d-%d", pid, start), boxes: map[string]*Box{}}
	s.Dir = filepath.Join(dirs.Run, "sessions", s.ID)
	if err := os.MkdirAll(filepath.Join(dirs.Run, "sessions"), 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	if err := ownedState(filepath.Join(dirs.Run, "sessions"), true); err != nil {
		return nil, err
	}
	setSelfExeScratch(dirs.Run)
	if s.Swept, err = sweep(dirs, false); err != nil {
		fmt.Fprintf(os.Stderr, "stepbox: cleaning up after a crashed session: %v\n", err)
	}
	if s.lock, err = makeSessionDir(s.Dir, sessionFile{PID: pid, Start: start, PIDNS: ownPIDNS}); err != nil {
		return nil, err
	}
	return s, nil
}

// SweepReport says what a sweep found and removed.
type SweepReport struct {
	Sessions  []string // dead sessions whose state was removed
	Processes int      // their processes ended: boxes' survivors and strays
	Cgroups   int      // cgroup directories of dead sessions removed
	Removed   []string // what was ended, deleted or written back, a line each
}

// Sweep tears down every session whose process is gone (its ledgers in
// reverse order) and ends stray processes marked with a dead session.
func Sweep(dirs Dirs) (SweepReport, error) { return sweep(dirs, true) }

// sweep is Sweep; without thorough, it only looks for processes and
// cgroups of dead sessions when it found a dead session's directory, as
// at every start-up (a scan of every process's environment and of the
// cgroup tree costs milliseconds; `stepbox cleanup` always makes it).
func sweep(dirs Dirs, thorough bool) (SweepReport, error) {
	var rep SweepReport
	var errs []error
	dirs, err := dirs.checkTrusted()
	if err != nil {
		return rep, &StateDirRefused{err}
	}
	root := filepath.Join(dirs.Run, "sessions")
	if err := ownedState(root, true); err != nil {
		return rep, &StateDirRefused{err}
	}
	ents, err := os.ReadDir(root)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return rep, err
	}
	for _, e := range ents {
		dir := filepath.Join(root, e.Name())
		if strings.HasPrefix(e.Name(), newSessionDirPrefix) {
			// A session that died while it made its directory: nothing
			// was recorded in it yet.
			if staleNewSessionDir(dir) {
				onefs.RemoveAll(dir) // never through a mount (onefs)
			}
			continue
		}
		hold, rec, alive := holdDeadSession(dir)
		// A session.json without a PID namespace is an older stepbox's,
		// which held no lock: its PID is all there is to judge it by.
		if alive || rec.PIDNS == "" && sessionAlive(e.Name()) {
			hold.release()
			continue
		}
		if rec.PIDNS != "" && rec.PIDNS != ownPIDNS {
			// Its ledgers' PIDs are of another PID namespace: here they
			// name other processes, or none. Named, not signalled; a
			// cleanup in that namespace tears it down.
			hold.release()
			errs = append(errs, fmt.Errorf("session %s ran in PID namespace %s, not this one (%s): its PIDs mean nothing here, so it is left for a `stepbox cleanup` run in that namespace", e.Name(), rec.PIDNS, ownPIDNS))
			continue
		}
		rep, errs = sweepSession(rep, errs, dir, e)
		hold.release()
	}
	if !thorough && len(rep.Sessions) == 0 {
		return rep, errors.Join(errs...)
	}
	// Processes marked with a session that no longer exists, whether or
	// not its directory survived.
	for _, p := range markedProcessesAny(func(s string) bool { return !sessionLive(dirs, s) }) {
		line := processLine(p.pid, p.box)
		left, err := killAndWaitLeft([]pidStart{p.pidStart})
		if errs = append(errs, err); len(left) > 0 {
			continue // said once it is so: the error names it
		}
		rep.Processes++
		rep.Removed = append(rep.Removed, line)
	}
	// cgroups of dead sessions, wherever their ledger went.
	st, err := cgroups.Sweep(cgroups.DefaultRoot, sessionMayLive)
	if err != nil && !errors.Is(err, cgroups.ErrNoCgroups) {
		errs = append(errs, err)
	}
	rep.Cgroups = st.Succeeded("rmdir")
	return rep, errors.Join(errs...)
}

// sweepSession tears down the dead session of directory dir, whose lock
// the sweep holds.
func sweepSession(rep SweepReport, errs []error, dir string, e fs.DirEntry) (SweepReport, []error) {
	{
		var failed []error
		boxes, _ := os.ReadDir(filepath.Join(dir, "boxes"))
		check := append([]fs.DirEntry{e}, boxes...)
		if fi, err := os.Lstat(filepath.Join(dir, "boxes")); err == nil {
			check = append(check, fs.FileInfoToDirEntry(fi))
		}
		for _, b := range check {
			// A symlink would lead teardown into a directory elsewhere.
			if !b.IsDir() {
				failed = append(failed, fmt.Errorf("%s is not a directory stepbox made (a %s): left alone", b.Name(), b.Type()))
			}
		}
		failed = append(failed, ownedSession(dir, boxes)...)
		if len(failed) > 0 {
			return rep, append(errs, fmt.Errorf("session %s: %w", e.Name(), errors.Join(failed...)))
		}
		procs, netLeft, named := leftovers(dir, e.Name())
		made := madeCgroups(dir)
		// What the cgroups held is counted too, once: a process leftovers
		// named (marked, or a ledger's) is in a box's cgroup as well.
		var killed []int
		for _, b := range boxes {
			esc, err := teardownLedger(filepath.Join(dir, "boxes", b.Name()), e.Name())
			failed, killed = append(failed, err), append(killed, esc.killed...)
			rep.Processes += len(esc.ended)
			rep.Removed = append(append(rep.Removed, esc.ended...), esc.notes...)
		}
		ended, err := teardownResources(dir, e.Name(), made)
		failed = append(failed, err)
		// Ended whether or not the rest of the session could be undone.
		rep.Processes += len(procs)
		rep.Removed = append(rep.Removed, procs...)
		for _, pid := range append(killed, ended...) {
			if !slices.Contains(named, pid) {
				named = append(named, pid)
				rep.Processes++
			}
		}
		said, err := refusalsOf(errors.Join(failed...))
		rep.Removed = append(rep.Removed, said...)
		if err != nil {
			// Keep the ledgers: what they still record (a controller
			// switched on, a cgroup) is undone at the next try.
			return rep, append(errs, fmt.Errorf("session %s: %w (its ledger is kept for the next cleanup)", e.Name(), err))
		}
		if err := onefs.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("session %s: remove %s: %w", e.Name(), dir, err))
		}
		rep.Sessions = append(rep.Sessions, e.Name())
		rep.Removed = append(rep.Removed, netLeft...)
	}
	return rep, errs
}

// StateDirRefused is a sweep that acted on nothing: the state dir is not
// the caller's own (statedir.go).
type StateDirRefused struct{ Err error }

func (e *StateDirRefused) Error() string { return e.Err.Error() }
func (e *StateDirRefused) Unwrap() error { return e.Err }

// errClosing refuses a step once the session has begun to end.
var errClosing = errors.New("the session is ending: its boxes are being torn down")

// MarkerEnv is the environment that marks a process as this session's,
// for host commands it starts (`!CMD`): teardown and the sweep end them
// as they end the boxes' processes.
func (s *Session) MarkerEnv() []string {
	return []string{envSession + "=" + s.ID, envPIDNS + "=" + ownPIDNS}
}

// LayerInUse says why layer name may still be mounted by a box: one of
// this session's has it in its overlay, or another session runs on the
// same state dir (its boxes are not this session's to see). nil: no box
// can be using it. It is the layer store's InUse.
func (s *Session) LayerInUse(name string) error {
	for _, b := range s.Boxes() {
		for _, l := range b.FS().Layers {
			if l.Name == name {
				return fmt.Errorf("box %s has it in its overlay; `rm %s` first", b.Name, b.Name)
			}
		}
	}
	ents, _ := os.ReadDir(filepath.Join(s.Dirs.Run, "sessions"))
	for _, e := range ents {
		if e.Name() != s.ID && !strings.HasPrefix(e.Name(), newSessionDirPrefix) && sessionDirAlive(filepath.Join(s.Dirs.Run, "sessions", e.Name())) {
			pid, _, _ := strings.Cut(e.Name(), "-")
			return fmt.Errorf("another stepbox session (PID %s) runs on this state dir and its boxes may have it mounted; remove the layer once it has ended", pid)
		}
	}
	return nil
}

// pidAlive reports whether a process with this PID exists.
func pidAlive(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}

// sessionAlive reports whether the session named "<pid>-<start>" still
// runs. A zombie has ended: where its parent reaps nothing (a container
// whose PID 1 is no init), it stays one, and its state is for cleanup.
func sessionAlive(id string) bool {
	pidS, startS, ok := strings.Cut(id, "-")
	if !ok {
		return false
	}
	pid, err1 := strconv.Atoi(pidS)
	start, err2 := strconv.ParseUint(startS, 10, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	st, err := startTime(pid)
	if err != nil || st != start {
		return false
	}
	state, err := procState(pid)
	return err == nil && state != "Z"
}

type markedProc struct {
	pidStart
	session, box string
}

// BoxNameRule is what a box name may look like.
var boxNameRule = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_-]{0,31}$`) })

// ValidBoxName checks a box name and says what is allowed.
func ValidBoxName(name string) error {
	if !boxNameRule().MatchString(name) {
		return fmt.Errorf("box name %q is not allowed: use a letter, then up to 31 letters, digits, '-' or '_' (no '/', spaces or dots)", step.Cut(name))
	}
	return nil
}

// Box returns the box called name.
func (s *Session) Box(name string) (*Box, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.boxes[name]
	if !ok {
		return nil, fmt.Errorf("no box called %q: %s", name, s.namesLocked())
	}
	return b, nil
}

func (s *Session) namesLocked() string {
	if len(s.order) == 0 {
		return "there are no boxes yet; make one with `new NAME`"
	}
	return "the boxes are " + strings.Join(s.order, ", ")
}

// Boxes returns the boxes in the order they were made.
func (s *Session) Boxes() []*Box {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Box, 0, len(s.order))
	for _, n := range s.order {
		out = append(out, s.boxes[n])
	}
	return out
}

// BoxNames returns the names of the boxes, sorted.
func (s *Session) BoxNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]string(nil), s.order...)
	sort.Strings(out)
	return out
}

// Remove tears one box down.
func (s *Session) Remove(name string) error { return s.remove(name, nil) }

func (s *Session) remove(name string, marked func(box string) []pidStart) error {
	s.mu.Lock()
	b, ok := s.boxes[name]
	if ok {
		delete(s.boxes, name)
		for i, n := range s.order {
			if n == name {
				s.order = append(s.order[:i], s.order[i+1:]...)
				break
			}
		}
	}
	names := s.namesLocked()
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("no box called %q: %s", name, names)
	}
	return b.teardown(marked)
}

// Close tears down every box, newest first, and removes the session's
// state directory. It is safe to call more than once. From its start no
// step runs again: it is the session's end. Where all is undone but
// ledger lines it ignored or dropped, it returns them as TeardownNotes.
func (s *Session) Close() error {
	s.closing.Store(true)
	s.down.Lock()
	defer s.down.Unlock()
	err := s.teardownAll()
	said, rest := refusalsOf(err)
	if rest != nil {
		return err
	}
	if err := onefs.RemoveAll(s.Dir); err != nil {
		return fmt.Errorf("remove %s: %w", s.Dir, err)
	}
	// Only now, with nothing left to sweep, is the session seen dead.
	if s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
	if len(said) > 0 {
		return TeardownNotes(said) // all undone; these only said
	}
	return nil
}

// Reset tears down every box and what the session made for them (its
// parent cgroup), and leaves a session that works as a fresh one: the
// learner's `reset` between lessons. Unlike Close it does not refuse
// later steps.
func (s *Session) Reset() error {
	if s.closing.Load() {
		return errClosing
	}
	s.down.Lock()
	defer s.down.Unlock()
	if err := s.teardownAll(); err != nil {
		return err
	}
	// The boxes' ledgers are gone with their boxes; the session's own
	// ledger went with its parent cgroup. What stays is a fresh session's
	// directory.
	return os.MkdirAll(filepath.Join(s.Dir, "boxes"), 0o700)
}

// untracked says whether a box of the session has no tracking cgroup.
func (s *Session) untracked() bool {
	s.mu.Lock()
	boxes := make([]*Box, 0, len(s.boxes))
	for _, b := range s.boxes {
		boxes = append(boxes, b)
	}
	s.mu.Unlock()
	for _, b := range boxes {
		if b.Tracked() == nil {
			return true
		}
	}
	return false
}

// teardownAll removes every box, newest first, ends whatever is still
// marked with this session, then removes the session's own resources.
func (s *Session) teardownAll() error {
	s.mu.Lock()
	order := append([]string(nil), s.order...)
	s.mu.Unlock()
	var errs []error
	// What the boxes made below the parent, read before their ledgers go:
	// only that is the session's to end and remove (ut32 F1).
	made := madeCgroups(s.Dir)
	// Every process in the boxes' cgroups under stepbox's parent first:
	// their tracking cgroups and the learner's, and cgroup.kill ends each
	// at once, a fork bomb's included (the session is not in them). A
	// cgroup no box made is not the session's: left to teardownResources
	// to name.
	s.mu.Lock()
	parent := s.parent
	s.mu.Unlock()
	if parent != nil {
		_, left, err := cgroups.KillParent(parent, made)
		if err != nil {
			errs = append(errs, fmt.Errorf("end the processes in %s: %w", parent.Name, err))
		}
		if len(left) > 0 {
			errs = append(errs, fmt.Errorf("end the processes in %s: %s still there after SIGKILL: %s", parent.Name, step.Count(len(left), "process"), pidNames(left)))
		}
	}
	// Where every box is tracked and none ever started a command in the
	// host's PID namespace, that ended every process of theirs but the
	// box processes, the session's own children, and the rest die with
	// their PID 1 (box_pidns.go): no search.
	search := s.hostPID.Load() || len(order) > 0 && (parent == nil || s.untracked())
	// One look at every process serves all the boxes. They all end first:
	// a command still running (a signal's teardown runs beside it) holds
	// its box until its processes are gone.
	byBox := map[string][]pidStart{}
	var all []pidStart
	if search {
		for _, p := range markedProcessesAny(func(id string) bool { return id == s.ID }) {
			byBox[p.box] = append(byBox[p.box], p.pidStart)
			all = append(all, p.pidStart)
		}
	}
	errs = append(errs, killAndWait(all))
	var marked func(box string) []pidStart // each box's own search
	if search {
		marked = func(box string) []pidStart { return byBox[box] }
	}
	for i := len(order) - 1; i >= 0; i-- {
		errs = append(errs, s.remove(order[i], marked))
	}
	// Anything still marked with this session ends too: what escaped every
	// ledger, and what a process forked while the boxes were going down.
	errs = append(errs, killAndWait(all))
	for round := 0; search && round < 5; round++ {
		left := markedProcesses(s.ID, "")
		if len(left) == 0 {
			break
		}
		errs = append(errs, killAndWait(left))
	}
	// Then what the session itself owns: the parent cgroup.
	_, err := teardownResources(s.Dir, s.ID, made)
	errs = append(errs, err)
	s.mu.Lock()
	s.parent, s.shown = nil, false
	s.mu.Unlock()
	return errors.Join(errs...)
}
