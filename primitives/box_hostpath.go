package primitives

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"stepbox/primitives/cgroups"
	"stepbox/primitives/inroot"
	"stepbox/primitives/rootfs"
	"stepbox/primitives/step"
)

// The learner's `!` commands and `stack` read and write a box's files
// from the host, as root: through $BOX_ROOT (/proc/PID/root, the box's
// mount namespace) and $BOX_UPPER (a host directory). The repl walks
// what is below those (host_boxpath.go); what is above, and the mounts
// the walk crosses, are judged here, where the box's state is known
// (ut31 F1):
//   - $BOX_UPPER: every directory from the state dir down to the upper
//     dir is the session's own and no symlink, so that no box process
//     (one that saw the host's tree before pivot_root, or broke out of
//     chroot) could have put a link to a host dir in its place
//     (UpperTop);
//   - $BOX_ROOT: the directory it names is the root of the overlay
//     stepbox mounted, where stepbox mounted it (RootTop);
//   - a mount the walk crosses inside the box's tree is one stepbox's
//     steps made (MadeMount): a box with a mount namespace of its own can
//     bind a host directory into its tree before pivot_root, and the bind
//     stays after it, so a mount of its own may show a host dir;
//   - pivot_root's success line names such mounts, and the volumes,
//     that still show host files after the pivot (HostReach).

// madeMount is a mount a step of stepbox's made in the box, as the box's
// mountinfo showed it right after. Mount IDs in mountinfo (and statx's
// STATX_MNT_ID) are reused once a mount is gone, so an ID alone does not
// prove the mount is still stepbox's: a box may unmount it and bind a
// host dir that gets the same ID. The device, the directory of the
// filesystem mounted (Root), the mount point and the type must match too:
// a mount that matches all of them shows the same directory at the same
// place, which is what stepbox mounted.
type madeMount struct {
	ID                     int
	Dev, Root, Point, Type string
}

// mountsNow is the box's mount table as its command process sees it.
func (b *Box) mountsNow() (map[int]rootfs.Mount, error) {
	ctx, cancel := context.WithTimeout(context.Background(), rootfs.StepReadTime)
	defer cancel()
	out := map[int]rootfs.Mount{}
	err := rootfs.ScanMounts(ctx, "/proc", b.CommandPID(), func(m rootfs.Mount) error {
		out[m.ID] = m
		return nil
	})
	return out, err
}

// recordMounts runs step, which mounts in the box, and remembers as
// stepbox's the mounts that appeared during it at or under point (as the
// box sees it). A mount the box made at the same moment under the same
// point would be taken too: that needs a box process racing the step
// at a path the step just made, and is not told apart.
func (b *Box) recordMounts(point string, step func() error) error {
	before, berr := b.mountsNow()
	err := step()
	if berr != nil {
		return err
	}
	after, aerr := b.mountsNow()
	if aerr != nil {
		return err
	}
	var made []madeMount
	for id, m := range after {
		if _, old := before[id]; !old && (point == "/" || under(m.Point, []string{point})) {
			made = append(made, madeMount{m.ID, m.Dev, m.Root, m.Point, m.FSType})
		}
	}
	b.mu.Lock()
	b.fs.Made = append(b.fs.Made, made...)
	b.mu.Unlock()
	return err
}

// rebaseMounts says where stepbox's mounts are once the box's root moved
// from merged to "/": chroot leaves them where they are, and mountinfo
// shows them from the new root; pivot_root binds merged onto itself with
// its submounts (rootfs.PivotRoot), new mounts with new IDs, so each is
// taken for stepbox's when it shows the same directory at the same place
// as one of stepbox's before it (a copy of a bind the box made is not).
// extra is a point (pivot_root's /proc) whose top mount the step itself
// made, or "".
func (b *Box) rebaseMounts(merged string, copied bool, extra string) {
	now, err := b.mountsNow()
	if err != nil {
		return
	}
	rel := func(p string) (string, bool) {
		if p == merged {
			return "/", true
		}
		r, ok := strings.CutPrefix(p, strings.TrimSuffix(merged, "/")+"/")
		return "/" + r, ok
	}
	pid := b.CommandPID()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []madeMount
	for _, m := range b.fs.Made {
		p, ok := rel(m.Point)
		if !ok {
			continue
		}
		m.Point = p
		if !copied {
			out = append(out, m)
			continue
		}
		for _, n := range now {
			if n.Point == p && n.Dev == m.Dev && n.Root == m.Root && n.FSType == m.Type {
				out = append(out, madeMount{n.ID, n.Dev, n.Root, n.Point, n.FSType})
			}
		}
	}
	if extra != "" {
		if id := oldMountID(fmt.Sprintf("/proc/%d/root%s", pid, extra)); id != 0 {
			if n, ok := now[id]; ok && n.Point == extra {
				out = append(out, madeMount{n.ID, n.Dev, n.Root, n.Point, n.FSType})
			}
		}
	}
	b.fs.Made = out
}

// realMerged is the merged dir as mountinfo shows it: with the links on
// the way to the state dir resolved.
func realMerged(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

// oldMountID is the mount ID of what p resolves to, as mountinfo numbers
// it (statx(2) STATX_MNT_ID, not the unique one), 0 if unread.
func oldMountID(p string) int {
	var stx unix.Statx_t
	if unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &stx) != nil || stx.Mask&unix.STATX_MNT_ID == 0 {
		return 0
	}
	return int(stx.Mnt_id)
}

// MadeMount reports whether the mount with ID id (statx STATX_MNT_ID)
// and device major:minor dev, which a host path into the box's root
// crosses, is one of stepbox's steps' and still shows what it did
// (madeMount). With false comes what the mount is, for the learner.
func (b *Box) MadeMount(id int, dev string) (bool, string) {
	now, err := b.mountsNow()
	return b.madeIn(now, err, id, dev)
}

// madeIn is MadeMount's judgement against the box's mount table read
// once (now, or the error that cut its read): HostReach judges every
// mount of the table, which reading it again for each would make
// quadratic.
func (b *Box) madeIn(now map[int]rootfs.Mount, err error, id int, dev string) (bool, string) {
	b.mu.Lock()
	var rec *madeMount
	for i := range b.fs.Made {
		if b.fs.Made[i].ID == id {
			rec = &b.fs.Made[i]
		}
	}
	b.mu.Unlock()
	m, ok := now[id]
	switch {
	case err != nil && !ok:
		return false, fmt.Sprintf("a mount stepbox cannot look up in the box's mount table (%v)", err)
	case !ok:
		return false, "a mount not in the box's mount table"
	}
	what := fmt.Sprintf("a %s mount of %s", m.FSType, m.Source)
	if m.Root != "/" {
		what += "[" + m.Root + "]"
	}
	if rec == nil || rec.Dev != dev || m.Dev != dev || m.Root != rec.Root || m.Point != rec.Point || m.FSType != rec.Type {
		return false, what + " that no step of stepbox's made"
	}
	return true, what
}

// HostMount is a mount in the box's root that shows a host filesystem
// (HostReach).
type HostMount struct {
	Point string // where the box sees it, which the box may have chosen
	// Mount is its line of the box's mount table: its filesystem, source
	// and, for a bind, the directory of that filesystem it shows (Root).
	Mount rootfs.Mount
	// Volume is the `mount bind` step's volume it is; nil for a mount
	// the box made itself.
	Volume *Volume
	// Reach is how a mount the box made reaches the host; Dir, for
	// ReachOverlay, the first of its dirs not provably in the box's tree,
	// as its options name it (the box's text), and InTree whether that
	// text names a dir of the tree all the same (through a symlink, or
	// another mount, now).
	Reach  Reach
	Dir    string
	InTree bool
}

// Reach is how a mount the box made itself reaches the host (HostReach).
type Reach int

const (
	// ReachFiles: a mount of a host filesystem, a bind of a host dir or
	// file (its device is one of the host's mounts').
	ReachFiles Reach = iota
	// ReachHostProc: a proc of the host's PID namespace (or one above
	// it): /N/root and /N/cwd of the host's processes are the host's /.
	ReachHostProc
	// ReachOtherProc: a proc of a PID namespace neither the host's nor
	// the box's: processes the box does not own, whose roots may be the
	// host's.
	ReachOtherProc
	// ReachOverlay: an overlay one of whose layer, upper or work dirs is
	// not provably in the box's tree: the box reads (and writes) that dir.
	ReachOverlay
	// ReachUnknown: a filesystem stepbox cannot tell is the box's own (a
	// sysfs, a cgroup, a type it does not know, a proc it cannot look
	// into).
	ReachUnknown
)

// HostReach lists the mounts in the box's root that reach the host, by
// mount ID, and how many there are (at most rootfs.MountsKept are
// listed). pivot_root binds the new root onto itself with its submounts
// (rootfs.PivotRoot), so what was mounted in it before comes along: a
// volume of stepbox's `mount bind`, and whatever the box mounted there
// itself (ut32 F7, ut34 F5). Listed are the volumes MadeMount still takes
// for stepbox's, and each mount no step of stepbox's made unless it is
// provably the box's own (boxOwn): a bind of a host dir was not the only
// way in, a fresh proc of the host's PID namespace leads to the host's /
// through /N/cwd, and an overlay of host dirs writes them. Stepbox's own
// proc, sys, cgroup and dev are the kernel's interfaces a container is
// given, which the lessons teach apart, and are not listed.
func (b *Box) HostReach() (list []HostMount, n int, err error) {
	hostDev, err := hostDevs()
	if err != nil {
		return nil, 0, err
	}
	now, err := b.mountsNow()
	if err != nil {
		return nil, 0, fmt.Errorf("box %s: %w", b.Name, err)
	}
	f := b.FS()
	root := f.root()
	own := b.ownDevs()
	looked := 0
	for _, id := range slices.Sorted(maps.Keys(now)) {
		m := now[id]
		_, target, _ := exportMount(m, f, root)
		if target == "" {
			continue // outside the box's root, the root itself, `mount mask`'s
		}
		made, _ := b.madeIn(now, nil, m.ID, m.Dev)
		var vol *Volume
		reach, dir, inTree := ReachFiles, "", false
		if made {
			i := slices.IndexFunc(f.Volumes, func(v Volume) bool { return v.Target == target })
			if i < 0 {
				continue
			}
			vol = &f.Volumes[i]
		} else if !hostDev[m.Dev] || own[m.Dev] {
			var mine bool
			look := looked < reachLooked
			if m.FSType == "proc" || m.FSType == "overlay" {
				looked++
			}
			if reach, dir, inTree, mine = b.boxOwn(m, target, own, look); mine {
				continue
			}
		}
		if n++; len(list) < rootfs.MountsKept {
			list = append(list, HostMount{Point: target, Mount: m, Volume: vol, Reach: reach, Dir: dir, InTree: inTree})
		}
	}
	return list, n, nil
}

// reachLooked bounds the proc and overlay mounts HostReach looks into
// (a few calls each, a stat of each overlay dir's every component), and
// overlayDirsLooked the dirs of one overlay it checks: a box may make
// thousands, and pivot_root's line waits for the judgement. Those past
// the bound are named as not known to be the box's own.
const (
	reachLooked       = 256
	overlayDirsLooked = 64
)

// ownDevs are the devices of the box's own tree: the overlays stepbox
// mounted as its root, the tmpfs its steps mounted in it, and the tmpfs
// stepbox mounted for its upper and work dirs (which the host's mount
// table shows too). A bind of a
// directory on one of them shows the box's own files. An upper dir on
// the state dir's filesystem (no tmpfs: not root, STEPBOX_UPPER_MB=0)
// shares its device with the host's files and is not one.
func (b *Box) ownDevs() map[string]bool {
	own := map[string]bool{}
	b.mu.Lock()
	for _, m := range b.fs.Made {
		if m.Type == "overlay" || m.Type == "tmpfs" {
			own[m.Dev] = true
		}
	}
	tmpfs := b.upperSize > 0
	b.mu.Unlock()
	var st unix.Stat_t
	if tmpfs && unix.Stat(filepath.Join(b.Dir, "overlay"), &st) == nil {
		own[fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))] = true
	}
	return own
}

// boxOwn judges a mount no step of stepbox's made, on no device of the
// host's mounts (or on one of the box's own, own): true when its source
// is provably the box's own; else how it reaches the host. Provably the
// box's own are a tmpfs, devpts or mqueue (of a device of its own), a
// bind of a directory of the box's tree, a proc of the box's PID
// namespace (procReach) and an overlay whose dirs are all in the box's
// tree (overlayOutside); a proc or an overlay only while look is true.
func (b *Box) boxOwn(m rootfs.Mount, target string, own map[string]bool, look bool) (r Reach, dir string, inTree, mine bool) {
	if own[m.Dev] {
		return 0, "", false, true
	}
	switch m.FSType {
	case "tmpfs", "devpts", "mqueue":
		return 0, "", false, true
	case "proc", "overlay":
		if !look || strings.Count(m.Super, ":") >= overlayDirsLooked {
			return ReachUnknown, "", false, false
		}
	}
	switch m.FSType {
	case "proc":
		r := b.procReach(m, target)
		return r, "", false, r < 0
	case "overlay":
		if dir, inTree := b.overlayOutside(m.Super, own); dir != "" {
			return ReachOverlay, dir, inTree, false
		}
		return 0, "", false, true
	}
	return ReachUnknown, "", false, false
}

// procReach says whose PID namespace a proc mount at target in the box
// shows: -1 for the box's own, else how it reaches the host. It is judged
// from the host, through the box's root, on the directory whose mount ID
// is the mount's (another mount over it hides it from the look, not from
// the box, which may unmount that one): /self resolves for a reader in
// the proc's PID namespace or one below it, so it resolves for the
// session when the proc is of the host's PID namespace or one above it
// (as failureOf tells the host's /proc); else the proc's PID 1 is in the
// box's PID namespace when its ns/pid is the box's PID 1's.
func (b *Box) procReach(m rootfs.Mount, target string) Reach {
	d, err := inroot.OpenPath(b.HostRoot(), target)
	if err != nil {
		return ReachUnknown
	}
	defer d.Close()
	fd := int(d.Fd())
	var stx unix.Statx_t
	if unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID, &stx) != nil || stx.Mask&unix.STATX_MNT_ID == 0 || int(stx.Mnt_id) != m.ID {
		return ReachUnknown
	}
	buf := make([]byte, 64)
	if _, err := unix.Readlinkat(fd, "self", buf); err == nil {
		return ReachHostProc
	}
	init := b.InitPID()
	if init == 0 {
		return ReachOtherProc // the box has no PID namespace of its own
	}
	boxNS, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", init))
	if err != nil {
		return ReachUnknown
	}
	k, err := unix.Readlinkat(fd, "1/ns/pid", buf)
	switch {
	case err != nil:
		return ReachUnknown // no PID 1 there, or hidden: nothing tells whose
	case string(buf[:k]) != boxNS:
		return ReachOtherProc
	}
	return -1
}

// overlayOutside is the first dir of an overlay's superblock options
// (lowerdir, upperdir, workdir) that is not provably in the box's tree,
// or "" when all are. Its options name each dir as the process that
// mounted it wrote it, resolved then by that process, so a dir counts as
// the box's only where it is an absolute, clean path below the box's
// overlay dir (its upper, work and merged dirs: $BOX_DIR/overlay, not
// the rest of $BOX_DIR, which holds stepbox's ledger) with no symlink on
// the way below it now, and on one of the box's own devices (own): the
// merged view as the box sees it, the upper and work dirs as the host
// does. What the box changed between its mount and now (a symlink it
// removed since) is not seen.
func (b *Box) overlayOutside(super string, own map[string]bool) (dir string, inTree bool) {
	top := filepath.Join(b.Dir, "overlay")
	tops := []string{top, realMerged(top)}
	var dirs []string
	for _, opt := range strings.Split(super, ",") {
		k, v, _ := strings.Cut(opt, "=")
		switch k {
		case "lowerdir", "upperdir", "workdir", "datadir":
			for _, d := range strings.Split(v, ":") {
				if d != "" {
					dirs = append(dirs, d)
				}
			}
		}
	}
	if len(dirs) == 0 {
		return "(no lowerdir)", false
	}
	for _, d := range dirs {
		if in, own := b.inOwnTree(d, tops, own); !own {
			return d, in
		}
	}
	return "", false
}

// inOwnTree reports whether overlay dir d names a dir below one of
// tops, the box's overlay dir (in), and whether it is the box's own: a
// directory there with no symlink on the way, on a device of own.
func (b *Box) inOwnTree(d string, tops []string, own map[string]bool) (in, mine bool) {
	if strings.Contains(d, `\`) || !path.IsAbs(d) || path.Clean(d) != d {
		return false, false // an escaped character, a relative path or a ..
	}
	var rel string
	for _, t := range tops {
		if r, ok := strings.CutPrefix(d, strings.TrimSuffix(t, "/")+"/"); ok {
			rel = r
		}
	}
	if rel == "" {
		return false, false
	}
	lstat := func(p string) (unix.Stat_t, error) {
		var st unix.Stat_t
		return st, unix.Lstat(filepath.Join(tops[0], p), &st)
	}
	if rel == "merged" || strings.HasPrefix(rel, "merged/") {
		// As the box sees it: the host's merged dir is an empty dir.
		lstat = func(p string) (unix.Stat_t, error) {
			return inroot.Lstat(b.HostRoot(), strings.TrimPrefix(p, "merged"))
		}
	}
	var st unix.Stat_t
	parts := strings.Split(rel, "/")
	for i := range parts {
		var err error
		if st, err = lstat(strings.Join(parts[:i+1], "/")); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return true, false
		}
	}
	return true, own[fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))]
}

// hostDevs are the devices (major:minor) of the host's mounts, as the
// session's own mount table shows them.
func hostDevs() (map[string]bool, error) {
	host, err := rootfs.Mounts(os.Getpid())
	if err != nil {
		return nil, fmt.Errorf("the host's mount table: %w", err)
	}
	dev := map[string]bool{}
	for _, m := range host.Mounts {
		dev[m.Dev] = true
	}
	return dev, nil
}

// HostHolder is a process of the box that reaches the host's filesystem
// after pivot_root: its cwd, root or an open file is on the host outside
// every mount of the box's, or it started before pivot_root (HostHolds).
type HostHolder struct {
	PID, BoxPID int
	Comm        string   // the box's to choose: escape it
	Role        string   // stepbox's executor ("box process", "PID 1"), or ""
	Holds       []string // "cwd", "root", "fd N", "thread TID's root"…: the first holdShown of them
	N           int      // how many it holds in all
	// Older: it ran when pivot_root changed the box's root, and runs
	// still. What it may keep of the host cannot all be seen from
	// outside: a shared mapping's file, an fd queued on a socket, a
	// thread's own fd table or root (ut34 F1).
	Older bool
}

const (
	// holdersKept bounds the processes HostHolds lists, holdShown the
	// places it names of each, holdFDs the fds it reads of each (of all
	// its threads), holdMaps the mappings, and holdProcs the processes
	// it looks at: a box may have many of each.
	holdersKept = 16
	holdShown   = 3
	holdFDs     = 4096
	holdMaps    = 4096
	holdProcs   = 4096
)

// HostHolds lists the box's processes (as the older_processes probe
// finds them: the session's tree and the box's cgroup) that may still
// reach the host's filesystem after pivot_root, and how many there are
// (the first holdersKept are listed), with how many processes it looked
// at and whether it stopped at holdProcs. pivot_root(2) moves only the
// processes whose root or cwd IS the old root: one started before it
// with its cwd elsewhere on the host (`cd /tmp/x && sleep 300 &`), or
// holding a directory or a file open, keeps it, and from inside the box
// `/proc/PID/cwd/../../..` is the host's / (ut33 F6). No look from
// outside proves such a process holds nothing more (a file it mapped
// and closed, an fd queued in flight on a socket: ut34 F1), so every
// process that ran at pivot_root and runs still is listed (Older), and
// with it what is seen: each thread's cwd, root and fds (a thread may
// have its own, unshare(2) CLONE_FS, CLONE_FILES), the files the process
// maps (/proc/PID/map_files) and an fd of a namespace not the box's (a
// host mount namespace's is a way back through setns(2)). What
// /proc/PID/cwd reads as is the box's text; judged is where it is:
// statx(2)'s mount ID of what the link leads to, on no mount of the
// box's table, and its device, one of the host's mounts'. A pipe, a
// socket or a device (a terminal) shows no host directory and is not
// counted.
func (b *Box) HostHolds() (list []HostHolder, n, looked int, cut bool, err error) {
	hostDev, err := hostDevs()
	if err != nil {
		return nil, 0, 0, false, err
	}
	now, err := b.mountsNow()
	if err != nil {
		return nil, 0, 0, false, fmt.Errorf("box %s: %w", b.Name, err)
	}
	procs, err := b.holderCandidates()
	if err != nil {
		return nil, 0, 0, false, err
	}
	if len(procs) > holdProcs {
		procs, cut = procs[:holdProcs], true
	}
	f := b.FS()
	nsDev, boxNS := namespacesOf(b.CommandPID())
	// On kernels before 6.8 map_files names an overlay file by its
	// layer's host path, links resolved: those are the box's own files
	// (a process started before pivot_root is named all the same).
	var own []string
	for _, d := range append([]string{f.Upper, f.Work}, layerDirs(f.Layers)...) {
		if d = filepath.Clean(d); d != "." && d != "/" {
			own = append(own, d, realMerged(d))
		}
	}
	type seen struct {
		mnt      uint64
		dev, ino uint64
	}
	// where says what p leads to: on the host's filesystem outside the
	// box's mounts (a directory, a file or a link, or anything with any),
	// and what it is, to count each once over the threads.
	where := func(p string, any bool) (bool, seen) {
		var stx unix.Statx_t
		if unix.Statx(unix.AT_FDCWD, p, 0, unix.STATX_MNT_ID|unix.STATX_TYPE|unix.STATX_INO, &stx) != nil || stx.Mask&unix.STATX_MNT_ID == 0 {
			return false, seen{} // ended, or closed meanwhile
		}
		id := seen{stx.Mnt_id, unix.Mkdev(stx.Dev_major, stx.Dev_minor), stx.Ino}
		if _, ok := now[int(stx.Mnt_id)]; ok {
			return false, id // the box's own mount; HostReach judges those
		}
		switch uint32(stx.Mode) & unix.S_IFMT {
		case unix.S_IFDIR, unix.S_IFREG, unix.S_IFLNK:
		default:
			if !any {
				return false, id
			}
		}
		return hostDev[fmt.Sprintf("%d:%d", stx.Dev_major, stx.Dev_minor)], id
	}
	for _, p := range procs {
		if p.PID == b.PID() {
			// stepbox's executor, which keeps its cwd on the host: with
			// a PID namespace the box does not see it, without one the
			// box sees the host's PID 1 too (the proc_root probe).
			continue
		}
		h := HostHolder{PID: p.PID, BoxPID: p.BoxPID(), Comm: p.Comm, Role: p.Role}
		h.Older = p.PID != b.InitPID() && stillRuns(f.Older, p.PID)
		hold := func(what string) {
			if h.N++; len(h.Holds) < holdShown {
				h.Holds = append(h.Holds, what)
			}
		}
		counted := map[string]bool{}
		once := func(kind string, id seen) bool {
			k := fmt.Sprint(kind, id)
			if counted[k] {
				return false
			}
			counted[k] = true
			return true
		}
		tids, _ := taskIDs(p.PID)
		fds := 0
		for _, tid := range tids {
			dir := fmt.Sprintf("/proc/%d/task/%d/", p.PID, tid)
			thread := ""
			if tid != p.PID {
				thread = fmt.Sprintf("thread %d's ", tid)
			}
			for _, l := range []string{"cwd", "root"} {
				if on, id := where(dir+l, true); on && once(l, id) {
					hold(thread + l)
				}
			}
			if fds >= holdFDs {
				continue
			}
			names := readNames(dir+"fd", holdFDs-fds)
			fds += len(names)
			for _, fd := range names {
				link := dir + "fd/" + fd
				on, id := where(link, false)
				switch {
				case on && once("fd "+fd, id):
					hold(thread + "fd " + fd)
				case !on && nsDev != 0 && id.dev == nsDev && !boxNS[id.ino] && once("fd "+fd, id):
					// A namespace's fd: setns(2) into it, a mount
					// namespace's above all, leads back out.
					ns, _ := os.Readlink(link)
					hold(fmt.Sprintf("%sfd %s (%s, not the box's)", thread, fd, printable(ns, 40)))
				}
			}
		}
		if p.PID != b.InitPID() {
			// Stepbox's init maps stepbox itself, from the host.
			mapped(p.PID, hold, func(m string) bool {
				on, id := where(m, false)
				if !on || !once("map", id) {
					return false
				}
				target, err := os.Readlink(m)
				return err != nil || !under(target, own)
			})
		}
		if h.N == 0 && !h.Older {
			continue
		}
		if n++; len(list) < holdersKept {
			list = append(list, h)
		}
	}
	return list, n, len(procs), cut, nil
}

// mapped holds what process pid maps of the host's files, as onHost
// (HostHolds's judgement of a map_files link) finds them: a shared
// writable mapping each, which writes the host's file, the rest counted
// as one. Through /proc/PID/map_files/ a process with CAP_SYS_ADMIN opens
// the file again, its fd long closed (ut34 F1); a host program and its
// libraries, mapped by a process started before pivot_root, are such
// files too. At most holdMaps mappings are looked at.
func mapped(pid int, hold func(string), onHost func(string) bool) {
	files := 0
	defer func() {
		if files > 0 {
			hold(step.Count(files, "mapped file") + " (map_files)")
		}
	}()
	var vmas []*procfs.ProcMap
	p, err := procfs.NewProc(pid)
	if err == nil {
		vmas, err = p.ProcMaps()
	}
	if err != nil {
		// A maps line procfs does not parse: without what each mapping
		// allows, each file is counted.
		dir := fmt.Sprintf("/proc/%d/map_files/", pid)
		for _, m := range readNames(dir, holdMaps) {
			if onHost(dir + m) {
				files++
			}
		}
		return
	}
	for i, m := range vmas {
		if i >= holdMaps {
			break
		}
		if m.Inode == 0 || m.Pathname == "" {
			continue // anonymous
		}
		name := fmt.Sprintf("%x-%x", m.StartAddr, m.EndAddr)
		switch {
		case !onHost(fmt.Sprintf("/proc/%d/map_files/%s", pid, name)):
		case m.Perms != nil && m.Perms.Shared && m.Perms.Write:
			hold("a shared writable mapping (map_files/" + name + ")")
		default:
			files++
		}
	}
}

// readNames are at most max names of directory dir, in numeric order
// (shorter first, then as text), none if unread.
func readNames(dir string, max int) []string {
	if max <= 0 {
		return nil
	}
	f, err := os.Open(dir)
	if err != nil {
		return nil
	}
	names, _ := f.Readdirnames(max)
	f.Close()
	slices.SortFunc(names, func(a, b string) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(a, b)
	})
	return names
}

// namespacesOf are the device of the namespace filesystem (nsfs) and the
// inodes of process pid's namespaces, every type: a namespace fd with
// another inode is not the box's. 0 and none if unread.
func namespacesOf(pid int) (uint64, map[uint64]bool) {
	dir := fmt.Sprintf("/proc/%d/ns/", pid)
	ino := map[uint64]bool{}
	var dev uint64
	for _, name := range readNames(dir, 32) {
		var st unix.Stat_t
		if unix.Stat(dir+name, &st) == nil {
			dev, ino[st.Ino] = st.Dev, true
		}
	}
	return dev, ino
}

// RootTop checks that top, the box's root as the host reaches it
// (HostRoot), is the root of the overlay stepbox mounted, where it
// mounted it: before pivot_root the path leads through the box's own
// mount namespace, where the box may mount anything over the state dir's
// directories. With it comes the mount ID the walk below starts from.
func (b *Box) RootTop(top string) (int, error) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, top, 0, unix.STATX_MNT_ID|unix.STATX_TYPE, &stx); err != nil {
		return 0, fmt.Errorf("statx %s: %w", top, err)
	}
	if stx.Mask&unix.STATX_MNT_ID == 0 {
		return 0, errors.New("the kernel gave no mount ID (statx STATX_MNT_ID, Linux 5.8), so stepbox cannot tell its overlay from a mount the box made")
	}
	f := b.FS()
	want := realMerged(f.Merged)
	if f.Pivoted || f.Chrooted {
		want = "/"
	}
	made, what := b.MadeMount(int(stx.Mnt_id), fmt.Sprintf("%d:%d", stx.Dev_major, stx.Dev_minor))
	mountRoot := stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT == 0 || stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0
	if !made || !mountRoot {
		return 0, fmt.Errorf("it leads to %s, not to the root of the overlay stepbox mounted at %s", what, want)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.fs.Made {
		if m.ID == int(stx.Mnt_id) && m.Point == want && m.Type == "overlay" {
			return m.ID, nil
		}
	}
	return 0, fmt.Errorf("it leads to %s, not to the overlay stepbox mounted at %s", what, want)
}

// UpperTop checks the path of the box's upper dir from the state dir
// down: no symlink, and every directory above the upper dir the
// session's own (the box's root owns the upper dir itself, and nothing
// above it: prepareOverlayFor), so no box process could have swapped the
// upper dir for a link to a host dir, or renamed one of them. The dirs
// above the state dir were checked when the session started
// (statedir.go).
func (b *Box) UpperTop() error {
	upper := filepath.Clean(b.FS().Upper)
	if upper == "." {
		return errors.New("the box has no upper dir")
	}
	var from string
	for _, r := range b.session.Dirs.ownRoots() {
		if under(upper, []string{r}) && len(r) > len(from) {
			from = r
		}
	}
	if from == "" {
		return fmt.Errorf("%s is outside stepbox's state dir", upper)
	}
	parts := strings.Split(strings.TrimPrefix(upper, from), "/")
	p := from
	for i := 0; i <= len(parts); i++ {
		if i > 0 {
			if parts[i-1] == "" {
				continue
			}
			p = path.Join(p, parts[i-1])
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("lstat %s: %w", p, err)
		}
		switch {
		case st.Mode&unix.S_IFMT == unix.S_IFLNK:
			target, _ := os.Readlink(p)
			return fmt.Errorf("%s is a symlink (-> %s), not the directory stepbox made", p, target)
		case st.Mode&unix.S_IFMT != unix.S_IFDIR:
			return fmt.Errorf("%s is not a directory", p)
		case p != upper && int(st.Uid) != os.Geteuid():
			return fmt.Errorf("%s is owned by uid %d, not by the session (uid %d): whoever owns it can put a link to a host dir in the upper dir's place", p, st.Uid, os.Geteuid())
		case p != upper && st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0:
			// A sticky dir (a tmpfs or /tmp given as the state dir, 1777)
			// lets no one else rename or remove the session's entry in it,
			// whose owner the next component's check sees.
			return fmt.Errorf("%s is mode %04o: its group or other users can put a link to a host dir in the upper dir's place", p, st.Mode&0o7777)
		}
	}
	return nil
}

// holderCandidates are the processes HostHolds looks at. Where the box is
// tracked and never ran a command in the host's PID namespace, its
// tracking cgroup (and what is below it) and its own cgroup hold every
// process of it: a read of each, as `cgroup attach` does, where reading
// the whole session's tree from /proc (processes) cost pivot_root 14 ms.
// Else the tree.
func (b *Box) holderCandidates() ([]*ProcessNode, error) {
	b.mu.Lock()
	host := b.hostPID
	b.mu.Unlock()
	g := b.Tracked()
	if g == nil || host {
		return b.processes()
	}
	pids := append(cgroups.TreeMembers(g), b.cgroupProcs()...)
	slices.Sort(pids)
	var out []*ProcessNode
	for _, pid := range slices.Compact(pids) {
		if proc, err := procfs.NewProc(pid); err == nil {
			if stat, err := proc.Stat(); err == nil {
				out = append(out, ReadProcess(proc, stat))
			}
		}
	}
	return out, nil
}
