package primitives

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"stepbox/primitives/cgroups"
	"stepbox/primitives/onefs"
	"stepbox/primitives/step"
)

// The ledger is the box's on-disk list of what it owns: every resource is
// written here before it is created, so that `rm`, `reset`, `exit`, a
// signal, a panic and the sweep after a crash all undo the same list, in
// reverse order.

// Resource kinds in a ledger.
const (
	ResProcesses = "processes" // any process marked with this box's environment (written before the first)
	ResProcess   = "process"   // one process, by PID and start time
	ResDir       = "dir"       // a directory stepbox made, removed with its contents
	ResCgroup    = "cgroup"    // a cgroup directory, removed children first
	ResMount     = "mount"     // stepbox's tmpfs for a box's upper dir, in the host's mount table (box_upper.go)
	ResNamespace = "ns"        // a namespace made for the box, by type, nsfs device and inode (box_namespaces.go)
	ResHostPID   = "host-pid"  // a command of the box started in the host's PID namespace (written before the first; box_pidns.go)
	ResIDs       = "ids"       // the block of host uids and gids a root session's box maps (idblock.go)
	ResNotMade   = "not-made"  // a cgroup directory a line before names that stepbox did not make: left alone (leaveNotMade)

	ResNet = "net" // a link, nf_tables table or rules, or a sysctl's old value: network.Undo
)

// Resource is one ledger line.
type Resource struct {
	Kind  string          `json:"kind"`
	PID   int             `json:"pid,omitempty"`
	Start uint64          `json:"start,omitempty"` // start time in clock ticks since boot (/proc/PID/stat field 22)
	Path  string          `json:"path,omitempty"`
	Box   string          `json:"box,omitempty"`
	Group json.RawMessage `json:"group,omitempty"` // a cgroup: the cgroups package's Group
	Note  string          `json:"note,omitempty"`
	NS    string          `json:"ns,omitempty"` // a namespace: its /proc/PID/ns name
	Dev   uint64          `json:"dev,omitempty"`
	Ino   uint64          `json:"ino,omitempty"`
	UID   int             `json:"uid,omitempty"` // an ID block: its first host uid, gid, and size
	GID   int             `json:"gid,omitempty"`
	Count int             `json:"count,omitempty"`

	Net json.RawMessage `json:"net,omitempty"` // a network resource: network.Undo
}

// Ledger appends resources to a box's ledger file.
type Ledger struct {
	path string
}

func openLedger(dir string) (*Ledger, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mkdir %s: %w", dir, err)
	}
	return &Ledger{path: filepath.Join(dir, "ledger.jsonl")}, nil
}

// Add records r before the resource exists.
func (l *Ledger) Add(r Resource) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	_, werr := f.Write(append(b, '\n'))
	cerr := f.Close()
	if werr != nil {
		return fmt.Errorf("ledger: write %s: %w", l.path, werr)
	}
	return cerr
}

// readLedger reads a ledger that is the caller's and writable by no one
// else (ownedStat): one someone else wrote is refused, never acted on.
func readLedger(path string) ([]Resource, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("state dir: %s is a symlink; stepbox reads only a ledger it wrote: left alone", path)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("ledger: fstat %s: %w", path, err)
	}
	if err := ownedStat(path, st, false); err != nil {
		return nil, err
	}
	var out []Resource
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r Resource
		// A line cut short by a crash is skipped: the resource it named
		// was never created (lines are written before creation).
		if json.Unmarshal(sc.Bytes(), &r) == nil {
			out = append(out, r)
		}
	}
	return out, sc.Err()
}

// Teardown undoes every resource of the ledger in dir, in reverse order,
// and removes the ledger itself. Errors are joined; teardown goes on past
// them. What it found by namespace comes back to be said.
func teardownLedger(dir, session string) (escaped, error) {
	return teardownLedgerWith(dir, func(box string) []pidStart { return markedProcesses(session, box) }, nil)
}

// searchBox ends what the box's cgroups and ledgered PIDs did not hold:
// the processes carrying its markers, then those still in its namespaces
// ns (pinned by pin, or nil). Each is ended, and what escaped both
// searches is named.
func searchBox(res []Resource, dir, session string, marked func(box string) []pidStart, ns map[string]nsID, pin *nsPin) (escaped, error) {
	var errs []error
	for _, r := range res {
		if r.Kind != ResProcesses {
			continue
		}
		// A process found may have forked, or been in execve, while the
		// list was read: look again until a look finds none. A first look
		// that finds none ends it: no process of the box was there to fork.
		left := marked(r.Box)
		for round := 0; len(left) > 0 && round < 6; round++ {
			errs = append(errs, killAndWait(left))
			left = markedProcesses(session, r.Box)
		}
	}
	// Last, what escaped both: found in the box's namespaces.
	pinned := pin != nil && len(pin.ns) > 0
	if pinned {
		ns = pin.ns
	}
	var roots map[uint64]string
	if pin != nil {
		roots = pin.roots
	}
	esc, err := escapees(filepath.Base(dir), dir, sessionStart(session), ns, roots, pinned)
	return esc, errors.Join(append(errs, err)...)
}

// teardownLedgerWith is teardownLedger with the marked processes of a box
// given by marked, so that a session tearing down many boxes scans /proc
// once, and with what a live session knows of the box (live, nil after a
// crash): its namespaces pinned where its processes were still there to
// read them from, and whether it needs a search at all (box_pidns.go).
// The pin is released once they are searched, before the box's mounts
// and links are undone.
func teardownLedgerWith(dir string, marked func(box string) []pidStart, live *liveBox) (escaped, error) {
	defer live.release()
	defer live.closeUpper()
	var esc escaped
	res, err := readLedger(filepath.Join(dir, "ledger.jsonl"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return esc, err
	}
	res = leaveNotMade(res)
	var errs []error
	session := sessionOf(dir)
	// The box's upper tmpfs and dirs go while its PID 1 exits, where that
	// ends every process of the box (box_pidns.go): the kernel tearing
	// down PID 1's namespaces and the unmount both wait on it, and no
	// process is found by the host's mount of the upper dir.
	var filesGone chan error
	if live.endsWithInit(res) {
		filesGone = undoFiles(res, dir, live)
	}
	// Processes go first, whatever their place: nothing else can be
	// removed while they use it (a mount namespace, a cgroup). A live box
	// whose processes all died with its PID 1 has none left to look for.
	search := live.searchNeeded(res)
	var ns map[string]nsID
	if search {
		ns, err = ledgerNamespaces(res)
		errs = append(errs, err)
		if live == nil && len(ns) == 0 && err == nil && len(res) > 0 {
			esc.notes = append(esc.notes, "box "+filepath.Base(dir)+" had no namespace of its own: a process of it that left stepbox's tracking cgroup and cleared its markers cannot be told from the host's after a crash, so none was looked for")
		}
	}
	// Else first every process in the box's cgroups, stepbox's tracking
	// one and the learner's, at once (cgroup.kill): those that shed their
	// markers, and a fork bomb's, faster than any scan of /proc could
	// chase them. (Whatever else a cgroup still holds is ended before its
	// rmdir, cgroups.Remove.)
	for i := len(res) - 1; search && i >= 0; i-- {
		if res[i].Kind == ResCgroup {
			ended, err := killCgroup(res[i], session)
			esc.killed, errs = append(esc.killed, ended...), append(errs, err)
		}
	}
	var pids []pidStart
	for i := len(res) - 1; i >= 0; i-- {
		if r := res[i]; r.Kind == ResProcess {
			p := pidStart{r.PID, r.Start}
			if !search && live.sawEnd(p) {
				continue
			}
			ok, err := ledgerProcessOwn(p, session)
			errs = append(errs, err)
			if ok {
				pids = append(pids, p)
			}
		}
	}
	errs = append(errs, killAndWait(pids))
	if search {
		found, err := searchBox(res, dir, session, marked, ns, live.pinned())
		esc.ended, esc.notes = found.ended, append(esc.notes, found.notes...)
		errs = append(errs, err)
	}
	live.release()
	// Else the mounts and dirs go now, beside the cgroups: the cgroups'
	// rmdir(2)s wait on the kernel's cgroup lock, the rest on the
	// filesystems'.
	if filesGone == nil {
		filesGone = undoFiles(res, dir, live)
	}
	owner := netOwner(res, session)
	for i := len(res) - 1; i >= 0; i-- {
		switch r := res[i]; r.Kind {
		case ResCgroup:
			errs = append(errs, removeCgroup(r, session, live.made(r.Group)))
		case ResNet:
			errs = append(errs, undoNet(r, owner))
		case ResIDs:
			note, err := ledgerIDs(r, filepath.Base(dir))
			if note != "" {
				esc.notes = append(esc.notes, note)
			}
			errs = append(errs, err)
		}
	}
	errs = append(errs, <-filesGone)
	// A line refused was never stepbox's: said, never acted on. Once
	// everything else is undone the box's directory goes with it, unless
	// a process of the box is still there to use it.
	said, err := refusalsOf(errors.Join(errs...))
	esc.notes = append(esc.notes, said...)
	if err != nil {
		return esc, err
	}
	if len(said) == 0 {
		return esc, removeBoxDir(dir)
	}
	if left := markedProcesses(session, filepath.Base(dir)); len(left) > 0 {
		return esc, fmt.Errorf("box %s: %s of it still there: its directory is kept for the next cleanup", filepath.Base(dir), step.Count(len(left), "process"))
	}
	return esc, removeBoxDir(dir)
}

// leaveNotMade takes out of each ResCgroup line of res the directories
// a ResNotMade line after it names, and drops a line left with none: a
// cgroup is written to the ledger before it is made, and one found there
// already was not made (cgroups.MakeTrack), so its processes are not the
// box's to end nor the directory its to remove (ut31 F6).
func leaveNotMade(res []Resource) []Resource {
	notMade := map[string]bool{}
	var out []Resource
	for _, r := range slices.Backward(res) {
		if r.Kind == ResNotMade {
			notMade[filepath.Clean(r.Path)] = true
			continue
		}
		var g cgroups.Group
		if r.Kind == ResCgroup && len(notMade) > 0 && json.Unmarshal(r.Group, &g) == nil {
			found := func(d cgroups.Dir) bool { return notMade[filepath.Clean(d.Path)] }
			dirs, track := slices.DeleteFunc(slices.Clone(g.Dirs), found), slices.DeleteFunc(slices.Clone(g.Track), found)
			if len(dirs)+len(track) < len(g.Dirs)+len(g.Track) {
				if len(dirs)+len(track) == 0 {
					continue
				}
				g.Dirs, g.Track = dirs, track
				r.Group, _ = json.Marshal(g)
			}
		}
		out = append(out, r)
	}
	slices.Reverse(out)
	return out
}

// undoFiles undoes, in a goroutine of its own, the ResMount and ResDir
// lines of the ledger in dir, in reverse order, and sends what failed.
func undoFiles(res []Resource, dir string, live *liveBox) chan error {
	done := make(chan error, 1)
	go func() {
		var errs []error
		var mounts hostMounts
		for i := len(res) - 1; i >= 0; i-- {
			switch r := res[i]; r.Kind {
			case ResDir:
				if err := ledgerDirInside(r.Path, dir); err != nil {
					errs = append(errs, err)
					continue
				}
				errs = append(errs, removeDir(r.Path))
			case ResMount:
				errs = append(errs, unmountUpper(r.Path, dir, &mounts, live.heldUpper(r.Path)))
			}
		}
		done <- errors.Join(errs...)
	}()
	return done
}

// removeBoxDir removes a box's state dir once its ledger is undone. All
// it holds then is the ledger: unlink(2) and rmdir(2) do; anything else
// found there goes as removeDir removes, never past a mount.
func removeBoxDir(dir string) error {
	err := unix.Unlink(filepath.Join(dir, "ledger.jsonl"))
	if err == nil || err == unix.ENOENT {
		if err = unix.Rmdir(dir); err == nil || err == unix.ENOENT {
			return nil
		}
	}
	return removeDir(dir)
}

// teardownResources undoes the session-level ledger in dir (its parent
// cgroup) without removing dir itself, and returns the processes it saw
// end. made says which cgroups below the parent the session's boxes
// made (madeCgroups, read before their ledgers were undone): any other
// is not stepbox's, and it and its processes are left, named (ut32 F1).
func teardownResources(dir, session string, made func(string) bool) ([]int, error) {
	res, err := readLedger(filepath.Join(dir, "ledger.jsonl"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var errs []error
	var ended []int
	done := map[string]bool{}
	foreign := map[string]cgroups.Foreign{}
	var parents []string
	owner := netOwner(res, session)
	for i := len(res) - 1; i >= 0; i-- {
		r := res[i]
		if r.Kind == ResCgroup && !done[string(r.Group)] {
			done[string(r.Group)] = true
			n, f, err := removeParent(r, session, made)
			ended, errs = append(ended, n...), append(errs, err)
			for _, c := range f {
				if _, ok := foreign[c.Path]; !ok {
					parents = append(parents, c.Path)
				}
				foreign[c.Path] = c
			}
		}
		if r.Kind == ResNet {
			errs = append(errs, undoNet(r, owner))
		}
	}
	for _, p := range parents {
		errs = append(errs, foreignError(foreign[p]))
	}
	// A line refused or dropped is said, and does not keep the ledger
	// (ledgerRefused): kept, it would fail every later try the same way.
	said, err := refusalsOf(errors.Join(errs...))
	if err != nil {
		return ended, errors.Join(err, notesErr(said))
	}
	if err := os.Remove(filepath.Join(dir, "ledger.jsonl")); err != nil {
		return ended, errors.Join(err, notesErr(said))
	}
	return ended, notesErr(said)
}

// removeParent undoes a ResCgroup line of the session's own ledger, its
// parent cgroup: below it only what made says the boxes made is ended and
// removed (cgroups.RemoveParent). A parent in a systemd scope goes with
// its scope, as removeCgroup does.
func removeParent(r Resource, session string, made func(string) bool) ([]int, []cgroups.Foreign, error) {
	g, dropped, err := ledgerGroup(r, session)
	if g == nil || err != nil {
		return nil, nil, errors.Join(err, droppedNote(dropped))
	}
	if g.Scope != "" {
		// Stopping the scope ends everything in it, a cgroup no box made
		// included: where one holds a process, the scope stays, named.
		if foreign := cgroups.ForeignIn(g, made); len(foreign) > 0 {
			return nil, foreign, droppedNote(dropped)
		}
		return nil, nil, removeCgroup(r, session, true)
	}
	ended, foreign, err := cgroups.RemoveParent(g, made)
	return ended, foreign, errors.Join(err, droppedNote(dropped))
}

// foreignError names a cgroup under the session's parent that no box of
// the session made, and its processes, which teardown left alone, and
// says what to do. Its name and its processes' are a box's or anyone's
// to choose: quoted, and the list bounded.
func foreignError(f cgroups.Foreign) error {
	const most = 10
	var names []string
	for i, pid := range f.PIDs {
		if i == most {
			names = append(names, fmt.Sprintf("and %d more", len(f.PIDs)-most))
			break
		}
		names = append(names, strconv.Itoa(pid)+" ("+commOf(pid)+")")
	}
	what := "no process is in it"
	if len(names) > 0 {
		what = step.Count(len(f.PIDs), "process") + " in it, left running: " + strings.Join(names, ", ")
	}
	p, parent := shownPath(f.Path), shownPath(filepath.Dir(f.Path))
	return fmt.Errorf("cgroup %s is not stepbox's: no box of the session made it, so it is left as it is (%s), and stepbox's parent %s with it; end or move its processes, `rmdir %s`, then run `stepbox cleanup` (or `rmdir %s`)", p, what, parent, p, parent)
}

// shownPath is p as it can be shown on a terminal: as it is if it is
// plain, else Go-quoted (a cgroup name holds any byte but '/').
func shownPath(p string) string {
	if q := strconv.Quote(p); q[1:len(q)-1] != p {
		return q
	}
	return p
}

// madeCgroups reads, from the ledgers of the session in dir's boxes,
// which cgroups below the session's parent the boxes made: a path is
// made if a ledger records it, or a cgroup below it, as made (not as
// found there already: leaveNotMade). So is an empty cgroup named as
// `cgroup new` names a box's, NAME-ID, for a box of the session: a
// session that crashed between its mkdir and its ledger line left it
// (box_cgroup.go), and removing it ends nothing.
func madeCgroups(dir string) func(string) bool {
	made, box := map[string]bool{}, map[string]bool{}
	boxes, _ := os.ReadDir(filepath.Join(dir, "boxes"))
	for _, b := range boxes {
		box[b.Name()] = true
		res, err := readLedger(filepath.Join(dir, "boxes", b.Name(), "ledger.jsonl"))
		if err != nil {
			continue
		}
		for _, r := range leaveNotMade(res) {
			var g cgroups.Group
			if r.Kind != ResCgroup || json.Unmarshal(r.Group, &g) != nil {
				continue
			}
			for _, d := range append(g.Dirs, g.Track...) {
				for p := filepath.Clean(d.Path); p != "/" && p != "."; p = filepath.Dir(p) {
					made[p] = true
				}
			}
		}
	}
	return func(p string) bool {
		if made[filepath.Clean(p)] {
			return true
		}
		name, ok := cgroups.BoxOfGroupName(filepath.Base(p))
		return ok && box[name] && !cgroups.Populated(p)
	}

}

// TeardownNotes are what a teardown says that is no failure: ledger lines
// it ignored or dropped (refusalsOf), each a line. Close returns them
// once everything else is undone.
type TeardownNotes []string

func (n TeardownNotes) Error() string { return strings.Join(n, "; ") }

// notesErr is said as TeardownNotes, nil where there is nothing to say;
// each line stays a refusal for refusalsOf (a sweep says them its own way).
func notesErr(said []string) error {
	if len(said) == 0 {
		return nil
	}
	return ledgerRefused{TeardownNotes(said)}
}

// sessionOf returns the session ID of a box ledger directory
// (…/sessions/ID/boxes/NAME).
func sessionOf(boxDir string) string {
	return filepath.Base(filepath.Dir(filepath.Dir(boxDir)))
}

// hostMounts is the host's mount table as teardown read it, once
// (procfs.GetMounts): what teardown unmounts it takes out itself.
type hostMounts struct {
	list []*procfs.MountInfo
	err  error
	read bool
}

func (m *hostMounts) get() ([]*procfs.MountInfo, error) {
	if !m.read {
		m.list, m.err = cgroups.ThreadMounts()
		m.read = true
	}
	return m.list, m.err
}

// detached takes out of the table the mounts at path and below it, as
// umount2(path, MNT_DETACH) does.
func (m *hostMounts) detached(path string) {
	m.list = slices.DeleteFunc(m.list, func(mi *procfs.MountInfo) bool {
		return mi.MountPoint == path || strings.HasPrefix(mi.MountPoint, path+"/")
	})
}

// removeDir removes a directory stepbox made and what is in it, never
// through a mount at or below it (onefs): a box that mounted a host
// directory there would have it emptied. The mount is left, and named.
func removeDir(path string) error {
	// An empty directory, the usual case once its tmpfs is unmounted, goes
	// with one rmdir(2), which removes no contents and fails (EBUSY) where
	// something is mounted on it.
	switch err := unix.Rmdir(path); err {
	case nil, unix.ENOENT:
		return nil
	}
	err := onefs.RemoveAll(path)
	if errors.Is(err, os.ErrPermission) && Rootless() {
		err = removeAllRootless(path)
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

type pidStart struct {
	pid   int
	start uint64
}

// startTime reads a process's start time, which tells a PID from a later
// reuse of it.
func startTime(pid int) (uint64, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, err
	}
	st, err := p.Stat()
	if err != nil {
		return 0, err
	}
	return st.Starttime, nil
}

// procState returns the state letter of a process (R, S, Z…).
func procState(pid int) (string, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return "", err
	}
	st, err := p.Stat()
	return st.State, err
}

// killAndWait sends SIGKILL to each process that is still the one recorded
// and waits until it is gone (pidfd_open(2) + poll: readable once it exits).
func killAndWait(procs []pidStart) error {
	_, err := killAndWaitLeft(procs)
	return err
}

// killAndWaitLeft is killAndWait that also returns the processes still
// alive at its end, so that a message says a process ended only once it
// has. A process frozen by a cgroup of stepbox's is thawed after the
// signal (it dies before it runs again); one a freeze outside stepbox's
// cgroups holds cannot act on the signal and is not waited for.
func killAndWaitLeft(procs []pidStart) (left []pidStart, _ error) {
	var errs []error
	var fds []int
	var sent []pidStart
	for _, p := range procs {
		if p.pid <= 1 {
			continue
		}
		fd, err := unix.PidfdOpen(p.pid, 0)
		if err != nil {
			continue // already gone
		}
		// Compare the start time after opening the pidfd: from then on the
		// PID cannot be reused behind our back.
		if st, err := startTime(p.pid); err != nil || st != p.start {
			unix.Close(fd)
			continue
		}
		if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil && err != unix.ESRCH {
			errs = append(errs, fmt.Errorf("pidfd_send_signal(%d, SIGKILL): %w", p.pid, err))
		}
		fds, sent = append(fds, fd), append(sent, p)
	}
	var pids []int
	for _, p := range sent {
		pids = append(pids, p.pid)
	}
	if _, err := cgroups.Thaw(pids); err != nil {
		errs = append(errs, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var stuck []int
	for i, fd := range fds {
		// A process that has not gone at once is looked at: one a freeze
		// still holds cannot act on SIGKILL and is not waited for.
		gone := pidfdExits(fd, min(100*time.Millisecond, time.Until(deadline)))
		if !gone && cgroups.Frozen(sent[i].pid) == "" {
			gone = pidfdExits(fd, time.Until(deadline))
		}
		if !gone {
			left, stuck = append(left, sent[i]), append(stuck, sent[i].pid)
		}
		unix.Close(fd)
	}
	if len(stuck) > 0 {
		errs = append(errs, fmt.Errorf("%s did not exit after SIGKILL: %s", step.Count(len(stuck), "box process"), pidNames(stuck)))
	}
	return left, errors.Join(errs...)
}

// pidfdExits waits up to d for the process of pidfd fd to exit (poll:
// readable once it has, pidfd_open(2)) and says whether it did.
func pidfdExits(fd int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		ms := max(int(time.Until(deadline)/time.Millisecond), 0)
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, ms)
		if err == unix.EINTR {
			continue
		}
		return n > 0 || err != nil
	}
}

// Environment markers every box process and container process carries, so
// that teardown and the sweep find processes that re-parented away.
const (
	envSession = "STEPBOX_SESSION"
	envBox     = "STEPBOX_BOX"
	// envPIDNS names the PID namespace the session's PID is a PID of: a
	// stepbox running in a container on the same machine marks its boxes
	// with the same names, and its PIDs mean nothing here.
	envPIDNS = "STEPBOX_PIDNS"
)

// ownPIDNS is this process's PID namespace, as envPIDNS writes it.
var ownPIDNS = func() string {
	var st unix.Stat_t
	if unix.Stat("/proc/self/ns/pid", &st) != nil {
		return ""
	}
	return strconv.FormatUint(st.Ino, 10)
}()

// markedProcesses lists the processes whose environment names the session
// (and box, unless box is empty).
func markedProcesses(session, box string) []pidStart {
	var out []pidStart
	for _, p := range markedProcessesAny(func(s string) bool { return s == session }) {
		if box == "" || p.box == box {
			out = append(out, p.pidStart)
		}
	}
	return out
}

// markedProcessesAny lists every process carrying stepbox's markers of a
// session in this process's PID namespace that want picks and that the
// kernel shows is that session's (markedOwned); the others of a wanted
// session are named and left alone. Markers of a session not wanted
// (another live session's, another user's) are not judged or named.
func markedProcessesAny(want func(session string) bool) []markedProc {
	procs, err := procfs.AllProcs()
	if err != nil {
		return nil
	}
	var out []markedProc
	self := os.Getpid()
	for _, p := range procs {
		if p.PID == self {
			continue
		}
		s, b, ns := markersOf(p)
		// Another PID namespace's session (stepbox in a container): not
		// this one's to judge or to end.
		if s != "" && (ns == "" || ns == ownPIDNS) && want(s) {
			st, _ := startTime(p.PID)
			if ok, why := markedOwned(p, st, s); !ok {
				refuseMarked(pidStart{p.PID, st}, s, why)
				continue
			}
			out = append(out, markedProc{pidStart{p.PID, st}, s, b})
		}
	}
	return out
}

// markersOf reads stepbox's markers from a process's environment: its
// session, box and PID namespace ("" where absent or unreadable).
func markersOf(p procfs.Proc) (session, box, pidns string) {
	env, err := p.Environ()
	if err != nil {
		return "", "", ""
	}
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, envSession+"="); ok {
			session = v
		} else if v, ok := strings.CutPrefix(e, envBox+"="); ok {
			box = v
		} else if v, ok := strings.CutPrefix(e, envPIDNS+"="); ok {
			pidns = v
		}
	}
	return session, box, pidns
}
