package primitives

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"stepbox/primitives/step"
)

// The namespaces stepbox made for a box are in its ledger, so that a
// process that left stepbox's tracking cgroup and cleared its markers (a
// box with every privilege of host root can do both) is still found after
// the session was killed: by `stepbox cleanup` and the sweep at start-up,
// through the same search as `rm` and `exit` (escapees).

// nsTypes are the /proc/PID/ns names a box's namespaces are read by.
var nsTypes = []string{"mnt", "pid", "net", "uts", "ipc", "cgroup", "user", "time"}

type nsID struct{ dev, ino uint64 }

func nsOf(pid, t string) (nsID, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+pid+"/ns/"+t, &st); err != nil {
		return nsID{}, err
	}
	return nsID{st.Dev, st.Ino}, nil
}

// boxNamespaces are the namespaces of the box's processes pids that are
// not the session's own, by /proc/PID/ns name, as device and inode.
func boxNamespaces(pids ...int) map[string]nsID {
	out := map[string]nsID{}
	for _, t := range nsTypes {
		self, err := nsOf("self", t)
		if err != nil {
			continue
		}
		for _, pid := range pids {
			if pid <= 0 {
				continue
			}
			if id, err := nsOf(strconv.Itoa(pid), t); err == nil && id != self {
				out[t] = id
			}
		}
	}
	return out
}

// recordNamespaces writes each namespace of the box process and its PID 1
// that is not the session's own to the ledger, once. A namespace has no
// name before unshare(2) makes it, so its line follows it; a crash in
// between leaves the box's processes to its cgroup and markers. b.mu is
// held, or the box is not yet shared.
func (b *Box) recordNamespaces() {
	if b.ledgered == nil {
		b.ledgered = map[string]nsID{}
	}
	for t, id := range boxNamespaces(b.pid, b.initPID) {
		if b.ledgered[t] == id {
			continue
		}
		if b.ledger.Add(Resource{Kind: ResNamespace, NS: t, Dev: id.dev, Ino: id.ino, Note: "the box's " + t + " namespace"}) == nil {
			b.ledgered[t] = id
		}
	}
}

// ledgerNamespaces are the namespaces a box's ledger recorded, each
// checked first: a namespace on the host's nsfs, and neither this
// process's nor the host init's (a planted line naming the host's own
// namespace would make every process on the host a box's).
func ledgerNamespaces(res []Resource) (map[string]nsID, error) {
	out := map[string]nsID{}
	var errs []error
	for _, r := range res {
		if r.Kind != ResNamespace {
			continue
		}
		if !slices.Contains(nsTypes, r.NS) {
			errs = append(errs, refusal("ledger: refusing namespace type %q: stepbox records only %s", step.Cut(r.NS), strings.Join(nsTypes, ", ")))
			continue
		}
		own, err := nsOf("self", r.NS)
		if err != nil {
			errs = append(errs, fmt.Errorf("ledger: stat /proc/self/ns/%s: %w", r.NS, err))
			continue
		}
		id := nsID{r.Dev, r.Ino}
		init, ierr := nsOf("1", r.NS)
		switch {
		case id.dev != own.dev:
			errs = append(errs, refusal("ledger: refusing %s namespace %d: device %d is not the host's nsfs (%d)", r.NS, r.Ino, r.Dev, own.dev))
		case id == own || ierr == nil && id == init:
			errs = append(errs, refusal("ledger: refusing %s namespace %d: it is the host's own", r.NS, r.Ino))
		default:
			out[r.NS] = id
		}
	}
	return out, errors.Join(errs...)
}

// escaped is what escapees found: processes ended, and what it could not
// tell, a line each for the learner.
type escaped struct {
	ended  []string
	notes  []string
	killed []int // the processes the box's cgroups held, ended there: counted, not named
}

// escapees ends the processes still in the box's own namespaces ns once
// its cgroups and marked processes are gone, and names them: only a
// process that is in neither gets this far (one that moved itself out of
// stepbox's tracking cgroup and cleared its markers, or, rootless on a
// host that gives the uid no cgroup, one that cleared its environment).
// A process in a user namespace below the box's is the box's too
// (userNSBelow): nothing leaves a user namespace for its parent. A freed
// namespace's inode number is given to
// the next namespace made (the kernel hands out the lowest free one), so
// a match is proof only while the namespaces are pinned (pinned: the
// session holds them open, pinNamespaces). After a crash, from the ledger,
// a process is ended only when the host shows it is the box's: its mount
// table holds the box's overlay (an upper dir in boxDir, a path no other
// box has), and it started after the session did. Matching numbers alone
// prove nothing: stepbox unshares in one order, so a later box, of this
// session or another, is given the very numbers a dead box had, type for
// type (seen in the tests). Those are named, not ended. killAndWait checks
// each start time again on a pidfd: a PID reused meanwhile is spared.
// roots (from a live box only, nsPin.pinRoots) are the filesystems of
// the box's root: a process whose root is on one of them is the box's,
// whatever namespaces it made itself (unshare -m -u keeps its root). Both are read
// with stat(2) of /proc/PID links, which takes no process's mmap_lock (a
// fork bomb's environ would stall a reader). What a look ends may have
// forked meanwhile: /proc is read again after each kill until a look
// finds none, and what is still there after the last is named as alive,
// so that `rm` never says the box's processes ended while one runs.
func escapees(box, boxDir string, sessionStart uint64, ns map[string]nsID, roots map[uint64]string, pinned bool) (escaped, error) {
	var out escaped
	if len(ns) == 0 && len(roots) == 0 {
		return out, nil
	}
	var errs []error
	noted := map[int]bool{}
	for round := 0; round < 6; round++ {
		found, whats, notes, err := escapeeLook(box, boxDir, sessionStart, ns, roots, pinned)
		if err != nil {
			return out, err
		}
		for pid, note := range notes {
			if !noted[pid] {
				noted[pid] = true
				out.notes = append(out.notes, note)
			}
		}
		if len(found) == 0 {
			return out, errors.Join(errs...)
		}
		// Said once it is so: a process still there was not ended.
		left, err := killAndWaitLeft(found)
		if err != nil {
			errs = append(errs, fmt.Errorf("box %s: %w", box, err))
		}
		for i, p := range found {
			if !slices.Contains(left, p) {
				out.ended = append(out.ended, fmt.Sprintf("ended %s of box %s: neither stepbox's cgroups nor its markers held it", whats[i], box))
			}
		}
		if len(left) == len(found) {
			break // none ended: another look would find the same
		}
	}
	// The host's side, after the last kill: what is still there is named.
	found, whats, _, err := escapeeLook(box, boxDir, sessionStart, ns, roots, pinned)
	if err != nil {
		return out, errors.Join(append(errs, err)...)
	}
	if len(found) > 0 {
		errs = append(errs, fmt.Errorf("box %s: %s of it still alive after SIGKILL to every process found: %s; end it by hand", box, step.Count(len(found), "process"), strings.Join(whats, ", ")))
	}
	return out, errors.Join(errs...)
}

// escapeeLook is one look of escapees across /proc: the processes proven
// the box's, each with what it is, and a note by PID for each of those
// only matching numbers.
func escapeeLook(box, boxDir string, sessionStart uint64, ns map[string]nsID, roots map[uint64]string, pinned bool) (found []pidStart, whats []string, notes map[int]string, _ error) {
	procs, err := procfs.AllProcs()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("box %s: read /proc to find its processes by namespace: %w", box, err)
	}
	notes = map[int]string{}
	self := os.Getpid()
	userNS, nested := ns["user"]
	for _, p := range procs {
		if p.PID == self {
			continue
		}
		var in []string
		for _, t := range nsTypes {
			if id, ok := ns[t]; ok {
				if got, err := nsOf(strconv.Itoa(p.PID), t); err == nil && got == id {
					in = append(in, t)
				}
			}
		}
		var why []string
		if len(in) > 0 {
			why = append(why, "in the box's "+strings.Join(in, ", ")+" namespace")
		} else if nested && userNSBelow(p.PID, userNS) {
			why = append(why, "in a user namespace below the box's")
		}
		var root unix.Stat_t
		rooted := len(roots) > 0 && unix.Stat("/proc/"+strconv.Itoa(p.PID)+"/root", &root) == nil && roots[root.Dev] != ""
		if rooted {
			why = append(why, "its root on the box's "+roots[root.Dev])
		}
		if len(why) == 0 {
			continue
		}
		st, err := p.Stat()
		if err != nil || st.State == "Z" {
			continue
		}
		what := fmt.Sprintf("PID %d (%s, %s)", p.PID, commOf(p.PID), strings.Join(why, ", "))
		proven := pinned || rooted || holdsOverlay(p.PID, boxDir)
		if st.Starttime < sessionStart || !proven {
			notes[p.PID] = fmt.Sprintf("left %s alone: it is in a namespace with the number box %s's had, but its mount table does not hold the box's overlay, so it may be another's (a freed namespace's number goes to the next one made); if it is the box's, end it by hand", what, box)
			continue
		}
		found = append(found, pidStart{p.PID, st.Starttime})
		whats = append(whats, what)
	}
	return found, whats, notes, nil
}

// userNSBelow says whether process pid's user namespace is nested, at
// any depth, in user namespace box: NS_GET_PARENT (ioctl_ns(2)) walks up
// from it. A process can never go back to a parent user namespace
// (setns(2) needs CAP_SYS_ADMIN in the target, which only a process of
// the parent or above can hold), and every namespace a process of the box
// makes is owned by the box's user namespace or one below it, so what
// runs below the box's is the box's: one that made a user namespace of its
// own is in none of the box's namespaces (ut29 F13). The kernel nests at
// most 32 user namespaces; NS_GET_PARENT fails (EPERM) at the top of the
// caller's.
func userNSBelow(pid int, box nsID) bool {
	fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/ns/user", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer func() { unix.Close(fd) }()
	for hop := 0; hop < 33; hop++ {
		parent, err := unix.IoctlRetInt(fd, unix.NS_GET_PARENT)
		if err != nil {
			return false
		}
		unix.Close(fd)
		fd = parent
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil {
			return false
		}
		if (nsID{st.Dev, st.Ino}) == box {
			return true
		}
	}
	return false
}

// nsPin holds a box's namespaces open (their fds), by type, and knows
// the filesystems its root is on (pinRoots).
type nsPin struct {
	ns    map[string]nsID
	fds   []int
	roots map[uint64]string // st_dev: what of the box's it is
}

// pinNamespaces opens the namespaces of the box's processes pids, so
// that none is freed, and its number given to another, while teardown
// looks for processes in them; release ends the pin.
func pinNamespaces(pids ...int) *nsPin {
	p := &nsPin{ns: map[string]nsID{}}
	for _, t := range nsTypes {
		self, err := nsOf("self", t)
		if err != nil {
			continue
		}
		for _, pid := range pids {
			if pid <= 0 {
				continue
			}
			fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/%s", pid, t), unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				continue
			}
			var st unix.Stat_t
			if unix.Fstat(fd, &st) != nil || (nsID{st.Dev, st.Ino}) == self {
				unix.Close(fd)
				continue
			}
			p.ns[t] = nsID{st.Dev, st.Ino}
			p.fds = append(p.fds, fd)
		}
	}
	return p
}

// release closes the pin's fds: a namespace no process is in is freed.
func (p *nsPin) release() {
	if p == nil {
		return
	}
	for _, fd := range p.fds {
		unix.Close(fd)
	}
	p.fds = nil
}

// pinRoots records the filesystems a process of the box has its root on:
// the overlays in the mount tables of the box's processes pids whose
// upper dir is in boxDir, and its upper tmpfs (upper, held open; nil
// without one). A process that made namespaces of its own (unshare -m -u)
// is in none of the box's, but its root is still the box's overlay. A
// device number names one filesystem only while it lives: the pinned
// mount namespace holds the overlay, upper the tmpfs, until the search
// is over. Called with the box's processes still running.
func (p *nsPin) pinRoots(boxDir string, upper *os.File, pids ...int) {
	p.roots = map[uint64]string{}
	for _, pid := range pids {
		if pid <= 0 {
			continue
		}
		for _, m := range boxOverlays(pid, boxDir) {
			var major, minor uint32
			if _, err := fmt.Sscanf(m.MajorMinorVer, "%d:%d", &major, &minor); err == nil {
				p.roots[unix.Mkdev(major, minor)] = "overlay"
			}
		}
	}
	var st unix.Stat_t
	if upper != nil && unix.Fstat(int(upper.Fd()), &st) == nil {
		p.roots[st.Dev] = "upper tmpfs"
	}
}

// holdsOverlay reports whether process pid's mount table holds an overlay
// whose upper dir lies in boxDir: a mount only the box's namespace has.
func holdsOverlay(pid int, boxDir string) bool {
	return len(boxOverlays(pid, boxDir)) > 0
}

// boxOverlays are the overlays in process pid's mount table whose upper
// dir lies in boxDir.
func boxOverlays(pid int, boxDir string) []*procfs.MountInfo {
	mounts, err := procfs.GetProcMounts(pid)
	if err != nil {
		return nil
	}
	dirs := []string{filepath.Clean(boxDir)}
	if real, err := filepath.EvalSymlinks(boxDir); err == nil {
		dirs = append(dirs, real)
	}
	var out []*procfs.MountInfo
	for _, m := range mounts {
		if m.FSType != "overlay" {
			continue
		}
		for _, d := range dirs {
			if strings.HasPrefix(m.SuperOptions["upperdir"], d+"/") {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

// sessionStart is the start time a session's ID carries ("<pid>-<start>").
func sessionStart(session string) uint64 {
	_, s, _ := strings.Cut(session, "-")
	n, _ := strconv.ParseUint(s, 10, 64)
	return n
}
