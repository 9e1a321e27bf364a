package primitives

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"stepbox/primitives/step"
)

// A box's upper and work dirs (the overlay's writable half) live on a
// tmpfs of stepbox's own, one per box, limited in size: a box that writes
// without end gets ENOSPC there, while /run, the state dir and the host's
// disk keep their space. The session mounts it in the host's mount
// namespace at `new`, before the box can unshare its own, so the box's
// mount namespace starts with it (a host without shared mounts propagates
// nothing made later). Overlayfs keeps its own metadata in trusted.*
// xattrs on the upper dir, which tmpfs stores for root. Not root (the
// rootless mode), stepbox may mount nothing on the host: roomToWrite's
// free-space check stands in.

// upperSource names stepbox's tmpfs in the mount table, so that teardown
// and the sweep unmount only their own.
const upperSource = "stepbox-upper"

// upperCap is the most an upper tmpfs may hold; upperShare is the part of
// the host's MemAvailable one box may take (tmpfs pages are memory);
// upperFloor the least worth mounting. Each box's bound alone does not
// bound the session: 64 boxes of 1 GB each would promise 64 GB. So the
// session's uppers together hold at most upperSessionShare of
// MemAvailable as it was at the session's first box (Session.reserveUpper).
// Each session bounds its own: two sessions at once, which know nothing
// of each other's boxes, may together promise twice that.
//
// upperShare is upperSessionShare/32: a session holds 32 boxes of the
// default size before `new` gives less or fails. A size= is a cap, not
// memory used, and the lessons' boxes write a few MB; at 1/8 of
// MemAvailable a class's 15–20 boxes failed at the fifth on a 4–8 GB lab
// machine, each box promised a quarter of the session's room. 1/64 is
// still 48 MB of a 4 GB machine's 3 GB available, 1 GB from 64 GB up.
const (
	upperCap          = 1 << 30
	upperShare        = 64
	upperFloor        = 16 << 20
	upperSessionShare = 2
)

// upperInodeBytes and upperInodesFloor bound the inodes of an upper
// tmpfs (nr_inodes=): without it the kernel gives each half the RAM's
// pages, and every empty file, directory or symlink, which takes none of
// size=, pins ~1 KiB of unreclaimable slab (shmem_inode_cache and its
// dentry; 840 B measured): 3 M of them, GBs that no size= or `df -h`
// shows (ut34 F6). One inode per 4 KiB of size= is one per page the box
// may fill, so a file with data meets size= before the inode bound, and
// only empty ones, directories and links reach it; their slab is then at
// most about a quarter of size= more, so the session's uppers, held to
// 1/2 of MemAvailable in size= (Session.reserveUpper counts size= alone),
// pin at most ~5/8 of it with their inodes. The floor is for an upper
// below 128 MB (upperFloor, $STEPBOX_UPPER_MB, a small machine's
// default), where it may pin ~32 MB of slab, more than its size=: a
// Debian rootfs is ~20 k files, and a learner's `apt install` adds
// thousands.
const (
	upperInodeBytes  = 4 << 10
	upperInodesFloor = 32 << 10
)

// upperInodes is the nr_inodes= of an upper tmpfs of size bytes.
func upperInodes(size int64) int64 {
	return max(size/upperInodeBytes, upperInodesFloor)
}

// UpperSizeEnv sets the size of each box's upper tmpfs, in MB, below
// what stepbox would choose (a lesson on a small machine, a test that
// fills it); 0 gives no tmpfs, as when stepbox is not root.
const UpperSizeEnv = "STEPBOX_UPPER_MB"

func init() { DoctorChecks = append(DoctorChecks, live(DoctorHost.checkUpper)) }

// checkUpper says where a box's upper dir will go, and its bound.
func (h DoctorHost) checkUpper() Check {
	c := Check{Name: "upper dirs", OK: true}
	if h.EUID != 0 {
		c.Found = fmt.Sprintf("not root: on the state dir's filesystem (stepbox can mount no tmpfs of its own), and no command starts in a box once it has less than %d MB free", upperReserve>>20)
		return c
	}
	size, why, err := upperSize()
	if err != nil {
		c.Found = fmt.Sprintf("on the state dir's filesystem (%v), and no command starts in a box once it has less than %d MB free", err, upperReserve>>20)
		return c
	}
	c.Found = fmt.Sprintf("a tmpfs of each box's own, %d MB (%s) and %d inodes (files, directories and links: %s): a box that fills it gets ENOSPC, the host keeps its space",
		size>>20, why, upperInodes(size), inodesWhy(size))
	if bound, by, err := upperBound(); err == nil {
		c.Found += fmt.Sprintf("; a session's uppers together hold at most %d MB now (%s, read at the session's first box)", bound>>20, by)
	}
	return c
}

// upperBound is the most a session's upper tmpfs may hold together, and
// why: upperSessionShare of MemAvailable.
func upperBound() (int64, string, error) {
	avail, err := memAvailable()
	if err != nil {
		return 0, "", err
	}
	return avail / upperSessionShare &^ (1<<20 - 1), fmt.Sprintf("1/%d of MemAvailable, %d MB", upperSessionShare, avail>>20), nil
}

func memAvailable() (int64, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return 0, err
	}
	mi, err := fs.Meminfo()
	if err != nil || mi.MemAvailableBytes == nil {
		return 0, fmt.Errorf("read MemAvailable in /proc/meminfo: %w", errors.Join(err, errors.ErrUnsupported))
	}
	return int64(*mi.MemAvailableBytes), nil
}

// upperRoom is what the session's uppers still may take, as `new` reads
// it; the bound is read once, at the first box that gets an upper tmpfs.
type upperRoom struct {
	bound int64  // 0: not read yet
	by    string // why that bound
	held  int64  // the size= of the live boxes' upper tmpfs, together
}

// reserveUpper takes, for box name, an upper tmpfs of size at most want
// out of what the session's uppers may still hold, and returns its size:
// want, or less where the room left is less. The room is given back by
// releaseUpper when the box is torn down. A room smaller than upperFloor
// fails `new`: the session's boxes hold it.
func (s *Session) reserveUpper(name string, want int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &s.upper
	if r.bound == 0 {
		bound, by, err := upperBound()
		if err != nil {
			return 0, fmt.Errorf("new %s: %w", name, err)
		}
		r.bound, r.by = bound, by+", when the session made its first box"
	}
	left := r.bound - r.held
	if left < upperFloor {
		return 0, fmt.Errorf("new %s: the upper tmpfs of the session's other boxes hold %d MB (their size= together), of the %d MB stepbox lets one session's boxes take (%s); %d MB are left, and a box's upper needs %d MB at least: `rm` a box to give its room back",
			name, r.held>>20, r.bound>>20, r.by, max(left, 0)>>20, upperFloor>>20)
	}
	size := min(want, left) &^ (1<<20 - 1)
	r.held += size
	return size, nil
}

// releaseUpper gives the room of box b's upper tmpfs back to the
// session, once: the tmpfs is unmounted (teardown), or never was.
func (b *Box) releaseUpper() {
	if b.upperSize == 0 {
		return
	}
	b.session.mu.Lock()
	b.session.upper.held -= b.upperSize
	b.session.mu.Unlock()
	b.upperSize = 0
}

// upperSizeEnv is UpperSizeEnv in MB, and whether it is set.
func upperSizeEnv() (int64, bool, error) {
	v := os.Getenv(UpperSizeEnv)
	if v == "" {
		return 0, false, nil
	}
	mb, err := strconv.ParseInt(v, 10, 64)
	if err != nil || mb < 0 || mb > upperCap>>20 {
		return 0, true, fmt.Errorf("$%s=%q: give a whole number of MB from 1 to %d (it can only lower stepbox's own choice), or 0 for no tmpfs", UpperSizeEnv, step.Cut(v), upperCap>>20)
	}
	return mb, true, nil
}

// CheckUpperSizeEnv checks UpperSizeEnv at start-up, before any box: a
// value `new` could not use would otherwise give each box an upper dir
// on the host's disk, with no more than a step's note (ut32 F2). A
// value of 0 asks for that, and says so: the returned note.
func CheckUpperSizeEnv() (note string, err error) {
	mb, set, err := upperSizeEnv()
	if err != nil || !set || mb > 0 || os.Geteuid() != 0 {
		return "", err
	}
	return fmt.Sprintf("$%s=0: the boxes' upper dirs get no tmpfs of their own, they write to the state dir's filesystem (stepbox starts no command once it has less than %d MB free)", UpperSizeEnv, upperReserve>>20), nil
}

// upperSize is the size of a new box's upper tmpfs, and why.
func upperSize() (int64, string, error) {
	if mb, set, err := upperSizeEnv(); err != nil {
		return 0, "", err
	} else if set {
		if mb == 0 {
			return 0, "", fmt.Errorf("$%s=0", UpperSizeEnv)
		}
		return mb << 20, "$" + UpperSizeEnv, nil
	}
	avail, err := memAvailable()
	if err != nil {
		return 0, "", err
	}
	size := min(avail/upperShare, upperCap)
	if size < upperFloor {
		return 0, "", fmt.Errorf("MemAvailable is %d MB: too little for a tmpfs of the box's own", avail>>20)
	}
	size &^= 1<<20 - 1
	return size, fmt.Sprintf("1/%d of MemAvailable (%d MB), at most %d MB", upperShare, avail>>20, upperCap>>20), nil
}

// mountUpper gives the box its upper tmpfs at its overlay dir: the
// directory and the mount each written to the ledger first. Where it
// cannot, the step says why and the free-space check stands in. The
// error: the session's boxes hold all the room their uppers may take,
// and `new` fails.
func (b *Box) mountUpper(st *step.Step) error {
	if os.Geteuid() != 0 {
		st.Notes = append(st.Notes, "stepbox is not root, so it cannot mount a size-limited tmpfs of its own for the box's upper dir: "+
			fmt.Sprintf("the box writes to the state dir's filesystem, and stepbox starts no command there once it has less than %d MB free", upperReserve>>20))
		return nil
	}
	size, why, err := upperSize()
	if err == nil {
		var reserved int64
		if reserved, err = b.session.reserveUpper(b.Name, size); err != nil {
			return err
		}
		if reserved < size {
			why = fmt.Sprintf("what is left of the %d MB the session's boxes may take together", b.session.upperBound()>>20)
		}
		size, b.upperSize = reserved, reserved
		if err = b.mountUpperAt(filepath.Join(b.Dir, "overlay"), size); err != nil {
			b.releaseUpper()
		}
	}
	if err != nil {
		st.Notes = append(st.Notes, "no tmpfs of the box's own for its upper dir ("+err.Error()+fmt.Sprintf("): stepbox starts no command once the filesystem it writes to has less than %d MB free", upperReserve>>20))
		return nil
	}
	st.Notes = append(st.Notes, fmt.Sprintf("the box's upper dir will be on a tmpfs of its own, %d MB (%s) and %d inodes (%s), at %s: a box that fills either gets ENOSPC, the host's disk and /run keep their space",
		size>>20, why, upperInodes(size), inodesWhy(size), filepath.Join(b.Dir, "overlay")))
	return nil
}

// upperBound is the bound the session's uppers are held to; 0 before its
// first upper tmpfs.
func (s *Session) upperBound() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.upper.bound
}

func (b *Box) mountUpperAt(dir string, size int64) error {
	if err := b.ledger.Add(Resource{Kind: ResDir, Path: dir, Note: "upper, work and merged dirs"}); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("mkdir %s: %w", dir, err)
	}
	if err := b.ledger.Add(Resource{Kind: ResMount, Path: dir, Note: "the box's upper tmpfs"}); err != nil {
		return err
	}
	// inode32: the overlay's xino=on (rootfs.MountOverlay) keeps the layer
	// in an inode number's high bits.
	// mode=0700: what the box writes is no other host user's to read (a
	// mapped root is given it by chown: prepareOverlayFor).
	// nr_inodes=: each inode is kernel memory that size= does not count
	// (upperInodes).
	opts := fmt.Sprintf("size=%d,nr_inodes=%d,mode=0700,inode32", size, upperInodes(size))
	if err := unix.Mount(upperSource, dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return &step.SyscallError{Call: step.MountCall(upperSource, dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts), Err: err}
	}
	// Nothing mounted below it later reaches another mount namespace.
	if err := unix.Mount("none", dir, "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("mount --make-private %s: %w", dir, err)
	}
	// Held until teardown: how `rm` knows its own tmpfs without reading
	// the mount table (heldUpper). Without it, teardown reads the table.
	if fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err == nil {
		b.upperRoot = os.NewFile(uintptr(fd), dir)
	}
	return nil
}

// unmountUpper undoes a ResMount line of the ledger in ledgerDir: only a
// path inside it, and only stepbox's tmpfs mounted there in the host's
// mount table (a lazy unmount: a box's mount namespace that still holds a
// copy keeps it until it goes). held is the tmpfs as the live session
// opened it at `new` (nil after a crash, or where it could not).
func unmountUpper(path, ledgerDir string, table *hostMounts, held *os.File) error {
	if err := ledgerDirInside(path, ledgerDir); err != nil {
		return err
	}
	if unmountHeld(path, held) {
		return nil
	}
	mounts, err := table.get()
	if err != nil {
		return fmt.Errorf("read /proc/self/mounts: %w", err)
	}
	// Each mount stacked at path, read once: every one must be stepbox's.
	stacked := 0
	for _, m := range mounts {
		if m.MountPoint == path {
			if m.FSType != "tmpfs" || m.Source != upperSource {
				return fmt.Errorf("ledger: refusing to unmount %s: a %s from %q is mounted there, not stepbox's tmpfs", path, m.FSType, m.Source)
			}
			stacked++
		}
	}
	for range stacked {
		if err := unix.Unmount(path, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil {
			return fmt.Errorf("umount2(%q, MNT_DETACH|UMOUNT_NOFOLLOW): %w", path, err)
		}
	}
	table.detached(path)
	return nil
}

// inodesWhy says how upperInodes chose the inodes of an upper of size.
func inodesWhy(size int64) string {
	if size/upperInodeBytes < upperInodesFloor {
		return "stepbox's least"
	}
	return fmt.Sprintf("one per %d KiB of its size", upperInodeBytes>>10)
}

// upperFull says, after a command failed, whether the box's upper tmpfs
// is full, of bytes or of inodes, with its bound: the learner sees what
// filled up. Out of inodes, df -h shows room, and ENOSPC alone misleads.
func (b *Box) upperFull() string {
	if b.upperSize == 0 || b.fs.Upper == "" {
		return ""
	}
	var st unix.Statfs_t
	if unix.Statfs(filepath.Dir(b.fs.Upper), &st) != nil {
		return ""
	}
	if st.Ffree == 0 {
		return fmt.Sprintf("box %s's upper dir is out of inodes: the tmpfs stepbox gave it holds %d files, directories and links at most (nr_inodes=%d, %s: each takes kernel memory that its %d MB size= does not count), and making one more fails with ENOSPC; `rm` files in the box, or `rm` the box",
			b.Name, st.Files, st.Files, inodesWhy(b.upperSize), b.upperSize>>20)
	}
	if st.Bavail*uint64(st.Bsize) >= 1<<20 {
		return ""
	}
	return fmt.Sprintf("box %s's upper dir is full: the tmpfs stepbox gave it holds %d MB (%s), and writes past that fail with ENOSPC; `rm` files in the box, or `rm` the box",
		b.Name, b.upperSize>>20, filepath.Dir(b.fs.Upper))
}

// unmountHeld unmounts, without reading the mount table, what is mounted
// at path while it is the filesystem held open by held: stat(2) of a mount
// point shows the mounted filesystem's device number, and the kernel
// gives no other filesystem that number while a descriptor holds this one
// alive. Stacked copies go one by one, until path shows another
// filesystem (the directory underneath). false: held is nil, path shows
// another filesystem from the start, or an unmount failed; the caller
// then reads the table, which says what is there.
func unmountHeld(path string, held *os.File) bool {
	var mine, at unix.Stat_t
	if held == nil || unix.Fstat(int(held.Fd()), &mine) != nil {
		return false
	}
	for n := 0; n < 16; n++ {
		if err := unix.Lstat(path, &at); err != nil || at.Dev != mine.Dev {
			return n > 0
		}
		if unix.Unmount(path, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW) != nil {
			return false
		}
	}
	return false
}
