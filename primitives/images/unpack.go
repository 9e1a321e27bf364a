package images

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"stepbox/primitives/step"
)

// ErrHostile is returned for a tar entry that would reach outside the
// layer it is unpacked into.
var ErrHostile = errors.New("entry leads out of the layer")

// OCI whiteouts (image-spec layer.md, "Whiteouts"): ".wh.NAME" deletes
// NAME of the layers below, ".wh..wh..opq" hides everything below in its
// directory.
const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// UnpackReport is what an unpack did besides writing files.
type UnpackReport struct {
	Entries   int
	Whiteouts int
	Opaque    int
	Skipped   []string // devices the kernel refused to make, with why
	// OwnersNotKept counts the entries unpacked rootless whose owner in
	// the tar is not root: they are written, owned by the user; Owner is
	// the first such owner, "uid:gid".
	OwnersNotKept int
	Owner         string
}

// note says what the unpack did not do as the tar asked, or "".
func (rep UnpackReport) note() string {
	var notes []string
	if rep.OwnersNotKept > 0 {
		notes = append(notes, fmt.Sprintf("every file is here, but the owners of %s (such as %s) were not kept: rootless, chown(2) to another uid needs CAP_CHOWN in the host's user namespace, so every file is yours, which a box sees as root",
			step.Count(rep.OwnersNotKept, "entry"), rep.Owner))
	}
	if len(rep.Skipped) > 0 {
		notes = append(notes, fmt.Sprintf("%s not unpacked: %s", step.Count(len(rep.Skipped), "entry"), rep.Skipped[0]))
	}
	return strings.Join(notes, "; ")
}

// Unpack writes the uncompressed layer tar r into root, which it creates
// (0755). OCI whiteouts become overlayfs ones: a 0/0 character device
// for ".wh.NAME", the overlay.opaque xattrs (trusted. and user.) for
// ".wh..wh..opq". Every entry is created through os.Root and *at calls
// relative to its parent directory, and an entry whose name is absolute,
// holds "..", or whose parent is a symlink (one made earlier in the same
// tar) is refused: nothing is ever written outside root.
func Unpack(r io.Reader, root string) (UnpackReport, error) {
	return unpack(r, root, nil)
}

// unpack is Unpack, asking entry (when not nil) before each entry is
// made: an error it returns stops the unpack there.
func unpack(r io.Reader, root string, entry func() error) (UnpackReport, error) {
	var rep UnpackReport
	if err := os.Mkdir(root, 0o755); err != nil {
		return rep, err
	}
	rt, err := os.OpenRoot(root)
	if err != nil {
		return rep, err
	}
	defer rt.Close()
	u := unpacker{root: rt, rep: &rep, ownerKept: os.Geteuid() != 0}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return rep, fmt.Errorf("read tar after %d entries: %w", rep.Entries, err)
		}
		if entry != nil {
			if err := entry(); err != nil {
				return rep, fmt.Errorf("tar entry %q: %w", hdr.Name, err)
			}
		}
		if err := u.entry(hdr, tr); err != nil {
			return rep, fmt.Errorf("tar entry %q: %w", hdr.Name, err)
		}
		rep.Entries++
	}
	return rep, u.finishDirs()
}

type unpacker struct {
	root *os.Root
	rep  *UnpackReport
	dirs map[string]*tar.Header // metadata set last: making children changes a dir's mtime
	// ownerKept: unpacked by a normal user (rootless), every entry stays
	// theirs, which a rootless box's single mapping shows as root;
	// chown(2) to another owner needs CAP_CHOWN in the host's user namespace.
	ownerKept bool
}

// chown gives an entry the tar's owner, except rootless (ownerKept),
// where the owners the tar names are noted once in the report.
func (u *unpacker) chown(do func() error, base string, hdr *tar.Header) error {
	if u.ownerKept {
		if hdr.Uid != 0 || hdr.Gid != 0 {
			if u.rep.OwnersNotKept == 0 {
				u.rep.Owner = fmt.Sprintf("%d:%d", hdr.Uid, hdr.Gid)
			}
			u.rep.OwnersNotKept++
		}
		return nil
	}
	return do()
}

// entryName turns a tar name into a path relative to the layer's root.
// ".." is refused rather than cleaned away, and so is an absolute name.
func entryName(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%w: absolute names are refused", ErrHostile)
	}
	var parts []string
	for _, p := range strings.Split(name, "/") {
		switch p {
		case "", ".":
		case "..":
			return "", fmt.Errorf("%w: '..' is refused", ErrHostile)
		default:
			parts = append(parts, p)
		}
	}
	if strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("%w: a NUL byte in a name", ErrHostile)
	}
	return strings.Join(parts, "/"), nil
}

// parent makes sure every directory above rel is a real directory of the
// layer, making missing ones (0755), and opens the one holding rel. A
// symlink on the way is refused: writing through it is how a tar climbs
// out (CVE-2018-15664, CVE-2019-14271 and their kin).
func (u *unpacker) parent(rel string) (*os.File, error) {
	dir := path.Dir(rel)
	if dir != "." {
		parts := strings.Split(dir, "/")
		for i := range parts {
			prefix := strings.Join(parts[:i+1], "/")
			fi, err := u.root.Lstat(prefix)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				if err := u.root.Mkdir(prefix, 0o755); err != nil {
					return nil, err
				}
			case err != nil:
				return nil, err
			case fi.Mode()&fs.ModeSymlink != 0:
				return nil, fmt.Errorf("%w: /%s is a symlink, and writing through it is refused", ErrHostile, prefix)
			case !fi.IsDir():
				return nil, fmt.Errorf("/%s is not a directory", prefix)
			}
		}
	}
	return u.root.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
}

func (u *unpacker) entry(hdr *tar.Header, data io.Reader) error {
	rel, err := entryName(hdr.Name)
	if err != nil || rel == "" {
		return err // "./" itself: the layer's root keeps 0755
	}
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	dirf, err := u.parent(rel)
	if err != nil {
		return err
	}
	defer dirf.Close()
	fd, base := int(dirf.Fd()), path.Base(rel)

	if base == opaqueMarker {
		u.rep.Opaque++
		return u.opaque(path.Dir(rel))
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		hidden := strings.TrimPrefix(base, whiteoutPrefix)
		if hidden == "" || hidden == "." || hidden == ".." {
			return fmt.Errorf("%w: a whiteout for %q", ErrHostile, hidden)
		}
		if err := u.clear(path.Join(path.Dir(rel), hidden), false); err != nil {
			return err
		}
		u.rep.Whiteouts++
		// overlayfs's whiteout: a character device 0/0 (overlayfs.rst, "whiteouts and opaque directories").
		if err := unix.Mknodat(fd, hidden, unix.S_IFCHR, 0); err != nil {
			return fmt.Errorf("mknodat(%s, S_IFCHR, 0/0): %w", hidden, err)
		}
		return nil
	}
	if err := u.clear(rel, hdr.Typeflag == tar.TypeDir); err != nil {
		return err
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		if _, err := u.root.Lstat(rel); errors.Is(err, fs.ErrNotExist) {
			if err := unix.Mkdirat(fd, base, 0o700); err != nil {
				return fmt.Errorf("mkdirat(%s): %w", base, err)
			}
		}
		if u.dirs == nil {
			u.dirs = map[string]*tar.Header{}
		}
		u.dirs[rel] = hdr
		return nil
	case tar.TypeReg, tar.TypeChar, tar.TypeBlock, tar.TypeFifo, tar.TypeSymlink:
	case tar.TypeLink:
		return u.hardlink(rel, hdr.Linkname)
	default:
		u.rep.Skipped = append(u.rep.Skipped, fmt.Sprintf("/%s: tar type %q is not unpacked", rel, hdr.Typeflag))
		return nil
	}
	switch hdr.Typeflag {
	case tar.TypeReg:
		if err := u.file(fd, base, hdr, data); err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, fd, base); err != nil {
			return fmt.Errorf("symlinkat(%q, %s): %w", hdr.Linkname, base, err)
		}
	default:
		mode := uint32(unix.S_IFIFO)
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode = unix.S_IFCHR
		case tar.TypeBlock:
			mode = unix.S_IFBLK
		}
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := unix.Mknodat(fd, base, mode|uint32(hdr.Mode&0o7777), int(dev)); err != nil {
			if errors.Is(err, unix.EPERM) {
				u.rep.Skipped = append(u.rep.Skipped, fmt.Sprintf("/%s: mknodat(%d/%d) refused by the kernel: %v", rel, hdr.Devmajor, hdr.Devminor, err))
				return nil
			}
			return fmt.Errorf("mknodat(%s, %d/%d): %w", base, hdr.Devmajor, hdr.Devminor, err)
		}
	}
	return u.meta(fd, base, hdr)
}

// clear removes what an earlier entry of the same tar left at rel: a
// later entry replaces it, as tar does. A directory stays when the new
// entry is a directory too.
func (u *unpacker) clear(rel string, keepDir bool) error {
	fi, err := u.root.Lstat(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if keepDir && fi.IsDir() {
		return nil
	}
	delete(u.dirs, rel)
	return u.root.RemoveAll(rel)
}

// file writes a regular file, refusing one that claims more bytes than
// the store's filesystem has free (a sparse entry's holes would be written
// out as zeros).
func (u *unpacker) file(fd int, base string, hdr *tar.Header, data io.Reader) error {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err == nil {
		if free := int64(sfs.Bavail) * sfs.Bsize; hdr.Size > free {
			return fmt.Errorf("it claims %d bytes and the layer store has %d free: refused", hdr.Size, free)
		}
	}
	nfd, err := unix.Openat(fd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("openat(%s, O_CREAT|O_EXCL|O_NOFOLLOW): %w", base, err)
	}
	f := os.NewFile(uintptr(nfd), base)
	n, err := copySparse(f, data)
	if err == nil {
		err = u.ownFile(f, hdr)
	}
	if err == nil {
		u.xattrs(f, base, hdr)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s (%d of %d bytes): %w", base, n, hdr.Size, err)
	}
	return nil
}

// zeros is what a block of a file's data is compared with.
var zeros [64 << 10]byte

// copySparse copies r into f as io.Copy does, but seeks over a block
// that is all zeros, leaving a hole: a layer's 4 GiB of zeros (a disk
// image, a tar bomb) takes no disk.
func copySparse(f *os.File, r io.Reader) (int64, error) {
	buf := make([]byte, len(zeros))
	var n int64
	hole := false
	for {
		m, err := r.Read(buf)
		if m > 0 {
			if hole = bytes.Equal(buf[:m], zeros[:m]); hole {
				_, err2 := f.Seek(int64(m), io.SeekCurrent)
				if err2 != nil {
					return n, err2
				}
			} else if _, err2 := f.Write(buf[:m]); err2 != nil {
				return n, err2
			}
			n += int64(m)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, err
		}
	}
	if hole {
		// A hole at the end is no byte of the file until its size says so.
		return n, f.Truncate(n)
	}
	return n, nil
}

// ownFile gives a regular file its owner and mode before its xattrs are
// set: chown(2) drops security.capability, and the set-user-ID bit.
func (u *unpacker) ownFile(f *os.File, hdr *tar.Header) error {
	if err := u.chown(func() error { return unix.Fchown(int(f.Fd()), hdr.Uid, hdr.Gid) }, f.Name(), hdr); err != nil {
		return fmt.Errorf("fchown(%d, %d): %w", hdr.Uid, hdr.Gid, err)
	}
	if err := unix.Fchmod(int(f.Fd()), uint32(hdr.Mode&0o7777)); err != nil {
		return fmt.Errorf("fchmod(%o): %w", hdr.Mode&0o7777, err)
	}
	return nil
}

// xattrs sets the file's extended attributes from the tar's PAX records:
// "security." (file capabilities, as ping has) and "user." ones; others
// ("trusted.") would speak to overlayfs and are not the image's to set.
func (u *unpacker) xattrs(f *os.File, base string, hdr *tar.Header) {
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok || !(strings.HasPrefix(name, "security.") || strings.HasPrefix(name, "user.")) {
			continue
		}
		if err := unix.Fsetxattr(int(f.Fd()), name, []byte(v), 0); err != nil {
			u.rep.Skipped = append(u.rep.Skipped, fmt.Sprintf("%s: fsetxattr(%s): %v", base, name, err))
		}
	}
}

// hardlink links rel to target, another entry of the same layer.
func (u *unpacker) hardlink(rel, linkname string) error {
	target, err := entryName(linkname)
	if err != nil {
		return fmt.Errorf("hard link to %q: %w", linkname, err)
	}
	if target == "" {
		return fmt.Errorf("%w: hard link to the layer's root", ErrHostile)
	}
	tdir, err := u.parent(target)
	if err != nil {
		return fmt.Errorf("hard link to %q: %w", linkname, err)
	}
	tdir.Close()
	if _, err := u.root.Lstat(target); err != nil {
		return fmt.Errorf("hard link to %q, which this layer does not hold: %w", linkname, err)
	}
	return u.root.Link(target, rel)
}

// meta gives an entry the owner, mode and times the tar holds. chown
// comes before chmod: chown(2) clears the set-user-ID bit.
func (u *unpacker) meta(fd int, base string, hdr *tar.Header) error {
	if hdr.Typeflag == tar.TypeReg {
		return setTimes(fd, base, hdr) // ownFile did the rest
	}
	if err := u.chown(func() error { return unix.Fchownat(fd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW) }, base, hdr); err != nil {
		return fmt.Errorf("fchownat(%s, %d, %d): %w", base, hdr.Uid, hdr.Gid, err)
	}
	if hdr.Typeflag != tar.TypeSymlink {
		if err := unix.Fchmodat(fd, base, uint32(hdr.Mode&0o7777), 0); err != nil {
			return fmt.Errorf("fchmodat(%s, %o): %w", base, hdr.Mode&0o7777, err)
		}
	}
	return setTimes(fd, base, hdr)
}

func setTimes(fd int, base string, hdr *tar.Header) error {
	ts := []unix.Timespec{unix.NsecToTimespec(timeOr(hdr.AccessTime, hdr.ModTime).UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	if err := unix.UtimesNanoAt(fd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("utimensat(%s): %w", base, err)
	}
	return nil
}

func timeOr(t, or time.Time) time.Time {
	if t.IsZero() {
		return or
	}
	return t
}

// opaque marks dir opaque for overlayfs with both xattrs: overlayfs
// reads "trusted.overlay.opaque", or only "user.overlay.opaque" when
// mounted with userxattr in a user namespace (Linux 5.11), so the layer
// serves both kinds of box.
func (u *unpacker) opaque(dir string) error {
	f, err := u.root.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, name := range []string{"trusted.overlay.opaque", "user.overlay.opaque"} {
		if err := unix.Fsetxattr(int(f.Fd()), name, []byte("y"), 0); err != nil {
			return fmt.Errorf("fsetxattr(/%s, %s, \"y\"): %w", dir, name, err)
		}
	}
	return nil
}

// finishDirs gives directories their owner, mode and times, deepest
// first, after every entry inside them is made.
func (u *unpacker) finishDirs() error {
	names := make([]string, 0, len(u.dirs))
	for n := range u.dirs {
		names = append(names, n)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(names)))
	for _, rel := range names {
		f, err := u.parent(rel)
		if err != nil {
			return fmt.Errorf("directory /%s: %w", rel, err)
		}
		err = u.meta(int(f.Fd()), path.Base(rel), u.dirs[rel])
		f.Close()
		if err != nil {
			return fmt.Errorf("directory /%s: %w", rel, err)
		}
	}
	return nil
}
