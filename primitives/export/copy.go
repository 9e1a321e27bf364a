package export

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"stepbox/primitives/inroot"
)

// CopyTree copies the tree at src to dst, which it creates: files,
// directories, symlinks, fifos and sockets with their owners, modes and
// times; hard links stay links, holes in sparse files stay holes. It
// stays on src's filesystem: what is mounted inside it (proc, a tmpfs,
// a volume) is not copied. Device nodes are not copied either, and
// counted in devices: a runtime makes /dev from config.json, and a node
// the box made (any major:minor, with CAP_MKNOD) would be a door to the
// host's devices for whoever can reach the copy. The tree is the box's:
// what it cannot read or what lies past inroot's limits is left out and
// said in skipped, never a reason to fail.
func CopyTree(src, dst string) (devices int, skipped string, err error) {
	return copyTree(src, dst, false)
}

// copyTree is CopyTree into dst, which the caller has made already when
// dstMade.
func copyTree(src, dst string, dstMade bool) (devices int, skipped string, err error) {
	// With a final slash src is followed when it is a symlink itself,
	// as /proc/PID/root is.
	src = strings.TrimSuffix(src, "/") + "/"
	var rootSt unix.Stat_t
	if err := unix.Stat(src, &rootSt); err != nil {
		return 0, "", &fs.PathError{Op: "stat", Path: src, Err: err}
	}
	links := map[[2]uint64]string{}
	var dirs []string
	copyOne := func(p string, d fs.DirEntry, _ error) error {
		rel := strings.TrimPrefix(p, src)
		to := filepath.Join(dst, rel)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return inroot.Unreadable(&fs.PathError{Op: "lstat", Path: p, Err: err})
		}
		if st.Dev != rootSt.Dev {
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				// A mount point: an empty directory, as in the layers.
				if err := os.Mkdir(to, 0o755); err != nil {
					return err
				}
				return fs.SkipDir
			}
			return nil
		}
		key := [2]uint64{st.Dev, st.Ino}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			if rel == "" && dstMade {
				dirs = append(dirs, rel)
				return nil
			}
			if err := os.Mkdir(to, 0o700); err != nil {
				return err
			}
			dirs = append(dirs, rel)
			return nil
		case unix.S_IFREG:
			if first, ok := links[key]; ok && st.Nlink > 1 {
				return os.Link(first, to)
			}
			if err := copyFile(src, rel, to); err != nil {
				return err
			}
			links[key] = to
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return inroot.Unreadable(err)
			}
			if err := os.Symlink(target, to); err != nil {
				return err
			}
		case unix.S_IFCHR, unix.S_IFBLK:
			devices++
			return nil
		default: // fifos and sockets
			if err := unix.Mknod(to, st.Mode, int(st.Rdev)); err != nil {
				return &fs.PathError{Op: "mknod", Path: to, Err: err}
			}
		}
		return meta(to, &st)
	}
	left, err := inroot.Walk(src, inroot.WalkLimits, func(p string, d fs.DirEntry, err error) error {
		err = copyOne(p, d, err)
		if errors.Is(err, unix.ENAMETOOLONG) {
			// A path the box nested past PATH_MAX here: left out, and said.
			return inroot.Unreadable(err)
		}
		return err
	})
	if err != nil {
		return devices, "", err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		// Not filepath.Join for the root: it drops src's final slash,
		// and Lstat would then read the symlink /proc/PID/root is.
		var st unix.Stat_t
		if err := unix.Lstat(src+dirs[i], &st); err != nil {
			return devices, "", err
		}
		if err := meta(filepath.Join(dst, dirs[i]), &st); err != nil {
			return devices, "", err
		}
	}
	return devices, left.String(), nil
}

// copyFile copies the file rel of the box's root to dst. It opens rel
// inside root (inroot.Open): a directory on the way that the box swapped
// for a symlink since the walk listed it cannot lead to a host file.
func copyFile(root, rel, dst string) error {
	in, err := inroot.Open(root, rel)
	if err != nil {
		return inroot.Unreadable(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = copySparse(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// copySparse copies in's data extents to the same offsets of out, found
// with lseek(SEEK_DATA) and lseek(SEEK_HOLE), and leaves the holes
// between them unwritten: a box's `truncate -s 50G` costs the copy no
// more disk than it cost the box.
func copySparse(out, in *os.File) error {
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	for off := int64(0); off < size; {
		data, err := unix.Seek(int(in.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole from off to the end
		}
		if err != nil {
			return &fs.PathError{Op: "lseek(SEEK_DATA)", Path: in.Name(), Err: err}
		}
		hole, err := unix.Seek(int(in.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			return &fs.PathError{Op: "lseek(SEEK_HOLE)", Path: in.Name(), Err: err}
		}
		if _, err := in.Seek(data, io.SeekStart); err != nil {
			return err
		}
		if _, err := out.Seek(data, io.SeekStart); err != nil {
			return err
		}
		if _, err := io.CopyN(out, in, hole-data); err != nil {
			return err
		}
		off = hole
	}
	// The size, with a trailing hole if there is one.
	if err := out.Truncate(size); err != nil {
		return &fs.PathError{Op: "ftruncate", Path: out.Name(), Err: err}
	}
	return nil
}

// meta gives p the owner, mode and times of st: chown first, as it
// clears the set-user-ID bit.
func meta(p string, st *unix.Stat_t) error {
	if err := unix.Lchown(p, int(st.Uid), int(st.Gid)); err != nil {
		return &fs.PathError{Op: "lchown", Path: p, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Chmod(p, st.Mode&0o7777); err != nil {
			return &fs.PathError{Op: "chmod", Path: p, Err: err}
		}
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "utimensat", Path: p, Err: err}
	}
	return nil
}
