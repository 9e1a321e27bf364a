package layers

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"stepbox/primitives/onefs"
)

// ErrDamaged is returned by Verify for a builtin layer whose files no longer
// match what was built.
var ErrDamaged = errors.New("layer is damaged")

// Verify checks the builtin layer name: its layer.json must parse, say it is
// builtin and was built by recipe, and the digest of its content must match
// the one recorded at build time. The error wraps ErrNoLayer or ErrDamaged.
//
// Reading every file is the slow part, so it is done once: when the content
// matches, Verify records a stamp of the metadata (inode, size, mode,
// mtime and ctime of every entry) and when it took it. While the stamp
// still matches, and every entry had last changed well before it, no file
// has been written, replaced, renamed, chmod'ed or touched since — each of
// those sets ctime, which no system call can set back — and the content
// need not be read again.
func (s *Store) Verify(name, recipe string) error {
	if _, err := os.Lstat(filepath.Join(s.Dir, name)); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w %q", ErrNoLayer, name)
	}
	l, err := s.read(name)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %q: %w", ErrDamaged, name, err)
	case !l.Builtin:
		return fmt.Errorf("%w: %q: layer.json does not mark it builtin", ErrDamaged, name)
	case l.Recipe != recipe:
		return fmt.Errorf("%w: %q was built by recipe %q, stepbox now builds %q", ErrDamaged, name, l.Recipe, recipe)
	}
	stamp, newest, err := metaStamp(l.Root)
	if err != nil {
		return fmt.Errorf("%w: %q: %w", ErrDamaged, name, err)
	}
	stampFile := filepath.Join(s.Dir, name, "stamp")
	if b, err := os.ReadFile(stampFile); err == nil {
		var digest, meta string
		var taken int64
		// A stamp vouches only for entries whose last change is clearly
		// older than the stamp: a file changed in the same timestamp tick
		// as the stamp was taken (a coarse clock ticks every few ms; some
		// filesystems count seconds) keeps its ctime, as git's "racily
		// clean" index entries do.
		if n, _ := fmt.Sscan(string(b), &digest, &meta, &taken); n == 3 &&
			digest == l.Digest && meta == stamp && newest < taken-int64(racyWindow) {
			return nil
		}
	}
	d, err := digest(l.Root)
	if err != nil {
		return fmt.Errorf("%w: %q: %w", ErrDamaged, name, err)
	}
	if d != l.Digest {
		return fmt.Errorf("%w: %q: its files changed since it was built (digest %s, built as %s)", ErrDamaged, name, short(d), short(l.Digest))
	}
	// Intact: remember its metadata for next time, next to layer.json. The
	// stamp names the digest it vouches for: should another session have
	// installed a new copy meanwhile, this stamp does not match it. Failing
	// to write it costs speed, not correctness.
	writeAtomic(stampFile, fmt.Appendf(nil, "%s %s %d\n", l.Digest, stamp, time.Now().UnixNano()))
	return nil
}

// racyWindow is how much older than its stamp an entry's last change
// must be for the stamp to vouch for it: more than any timestamp
// granularity (a jiffy, or 2 s on FAT).
const racyWindow = 3 * time.Second

// metaStamp hashes the metadata of every entry under root, root included:
// path, inode, mode, size, mtime and ctime (lstat(2)), but not atime,
// which reading changes. It also returns the newest ctime, in unix
// nanoseconds.
func metaStamp(root string) (string, int64, error) {
	h := sha256.New()
	var newest int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return &fs.PathError{Op: "lstat", Path: p, Err: err}
		}
		fmt.Fprintf(h, "%s\x00%d\x00%o\x00%d\x00%d.%d\x00%d.%d\n", p[len(root):], st.Ino, st.Mode, st.Size,
			st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
		newest = max(newest, st.Ctim.Nano())
		return nil
	})
	if err != nil {
		return "", 0, err
	}
	return "meta:" + hex.EncodeToString(h.Sum(nil)), newest, nil
}

func short(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

// Install builds the builtin layer l.Name: build fills root, a directory it
// must create, inside a temporary layer dir next to the store's layers;
// then the new layer takes the old one's place in one rename. A crash
// leaves either the old layer or the new one, never half of either. If
// another session installed an intact copy meanwhile, Install does
// nothing. A user's layer of the same name is never replaced.
func (s *Store) Install(l Layer, build func(root string) error) error {
	if err := CheckName(l.Name); err != nil {
		return fmt.Errorf("install builtin layer: %w", err)
	}
	unlock, err := s.exclusive()
	if err != nil {
		return fmt.Errorf("install builtin layer %s: %w", l.Name, err)
	}
	defer unlock()
	if s.Verify(l.Name, l.Recipe) == nil {
		return nil
	}
	if old, err := s.read(l.Name); err == nil && !old.Builtin {
		return fmt.Errorf("install builtin layer %s: %w: a layer of yours has that name; remove it (`layer rm %s`) so stepbox can build its own", l.Name, ErrExists, l.Name)
	}

	tmp, err := os.MkdirTemp(s.Dir, ".build-"+l.Name+"-")
	if err != nil {
		return fmt.Errorf("install builtin layer %s: %w", l.Name, err)
	}
	defer onefs.RemoveAll(tmp) // after the exchange below, the old layer
	root := filepath.Join(tmp, "root")
	if err := build(root); err != nil {
		return fmt.Errorf("build layer %s: %w", l.Name, err)
	}
	if l.Digest, err = digest(root); err != nil {
		return fmt.Errorf("build layer %s: %w", l.Name, err)
	}
	l.Builtin, l.Created, l.Locked, l.LockedBy = true, time.Now().UTC(), false, ""
	if err := writeMeta(tmp, l); err != nil {
		return fmt.Errorf("build layer %s: %w", l.Name, err)
	}

	final := filepath.Join(s.Dir, l.Name)
	flags := uint(unix.RENAME_NOREPLACE)
	if _, err := os.Lstat(final); err == nil {
		flags = unix.RENAME_EXCHANGE
	}
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, final, flags); err != nil {
		return fmt.Errorf("install builtin layer %s: renameat2(%s, %s): %w", l.Name, tmp, final, err)
	}
	return nil
}

// digest hashes every path under root with its kind, mode, size, symlink
// target and file content. Reading the content, not only the metadata,
// also catches a file changed in place; it costs about 2 ms for a busybox
// base (~280 entries, 2 MB) and 9 ms for one of host binaries and their
// libraries, with a warm page cache.
func digest(root string) (string, error) {
	entries, err := WalkDir(root)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, e := range entries {
		fmt.Fprintf(h, "%s\x00%s\x00%o\x00%d\x00%s\n", e.Path, e.Kind, uint32(e.Mode), e.Size, e.Target)
		if e.Kind != File {
			continue
		}
		if err := hashFile(h, filepath.Join(root, e.Path)); err != nil {
			return "", err
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func hashFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// Sweep removes the temporary directories that a session killed in the
// middle of New, Remove or Install left in the store. They start with '.',
// which no layer name does.
func (s *Store) Sweep() error {
	unlock, err := s.exclusive()
	if err != nil {
		return fmt.Errorf("sweep layer store: %w", err)
	}
	defer unlock()
	des, err := os.ReadDir(s.Dir)
	if err != nil {
		return fmt.Errorf("sweep layer store: %w", err)
	}
	var errs []error
	for _, de := range des {
		n := de.Name()
		if de.IsDir() && (strings.HasPrefix(n, ".new-") || strings.HasPrefix(n, ".build-") || strings.HasPrefix(n, ".rm-")) {
			errs = append(errs, onefs.RemoveAll(filepath.Join(s.Dir, n)))
		}
	}
	return errors.Join(errs...)
}
