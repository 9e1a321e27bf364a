package primitives

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// A bundle exported from a box with a user namespace of its own
// (`export bundle`) belongs to the box's ID block: its directory is
// 0710 root:the block's root group and rootfs/ is the block's root's, so
// that runc's init, mapped to the block, reaches it. Handed to a later
// box, the block would make that box's root the owner of the earlier
// bundle's rootfs/, which the learner runs with runc as root (ut31 F5).
// So the block stays out of reuse while the bundle is there: export
// records the bundle's path against the block in idLockDir, beside the
// claims and as trusted (only root may write there), and a claim skips a
// block one of whose recorded bundles is still a directory with the
// block's IDs. The IDs are checked, not the record alone, so a bundle
// deleted (or moved: it is not followed) frees its block at the next
// claim, and its record goes then, or at the next release. Kept in /run,
// as the claims are, the records last until the host reboots; a bundle
// kept past that is another box's to own once its block is taken again.
// Chowning rootfs/ alone to root would not do: what is in it is still
// the block's, for the later box to rewrite; a bundle all root's, with no
// user namespace, would not be the box.

// bundleMark separates, in a record's name, the block's first uid from
// a hash of the bundle's path: <uid>.bundle-<hash>. A claim's file is
// <uid> alone (lockName).
const bundleMark = ".bundle-"

// bundleRecordName is the name, in idLockDir, of the record of the
// bundle at path against the block whose uids start at outside.
func bundleRecordName(outside int, path string) string {
	sum := sha256.Sum256([]byte(path))
	return lockName(outside) + bundleMark + hex.EncodeToString(sum[:8])
}

// KeepIDsFor records that the bundle at dir, just exported from b,
// belongs to b's ID block, so that no later box is given the block while
// the bundle is there. It comes after the bundle (a claim drops a record
// whose bundle is not there): until then, and until b is removed, b's own
// claim keeps the block. A box with no block of root's (rootless, or no
// user namespace) has nothing to keep.
func (b *Box) KeepIDsFor(dir string) error {
	b.mu.Lock()
	c := b.ids
	b.mu.Unlock()
	if c == nil {
		return nil
	}
	path, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("export bundle %s: %w", dir, err)
	}
	fd, err := openIDLockDir()
	if err != nil {
		return fmt.Errorf("export bundle %s: keep box %s's ID block for it: %w", dir, b.Name, err)
	}
	defer unix.Close(fd)
	name := bundleRecordName(c.uid.Outside, path)
	f, err := unix.Openat(fd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("export bundle %s: record it against box %s's ID block in %s/%s: %w", dir, b.Name, idLockDir, name, err)
	}
	_, werr := unix.Write(f, []byte(path+"\n"))
	if err := errors.Join(werr, unix.Close(f)); err != nil {
		unix.Unlinkat(fd, name, 0)
		return fmt.Errorf("export bundle %s: record it against box %s's ID block in %s/%s: %w", dir, b.Name, idLockDir, name, err)
	}
	return nil
}

// isBundleRecord tells a bundle's record from a claim's file by its name,
// and gives the first uid of the block it is recorded against.
func isBundleRecord(name string) (outside int, ok bool) {
	uid, _, found := strings.Cut(name, bundleMark)
	if !found {
		return 0, false
	}
	n, err := strconv.Atoi(uid)
	return n, err == nil
}

// keptBlocks reads the records in the open idLockDir dir and gives, for
// each block of area (by its first uid) that a bundle still keeps out of
// reuse, that bundle's path. A record whose bundle is gone, or that names
// no block of area, is removed.
func keptBlocks(dir int, area idArea) map[int]string {
	kept := map[int]string{}
	d, err := unix.Openat(dir, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return kept
	}
	f := os.NewFile(uintptr(d), idLockDir)
	names, _ := f.Readdirnames(-1)
	f.Close()
	n, size := area.blocks()
	for _, name := range names {
		outside, ok := isBundleRecord(name)
		if !ok {
			continue
		}
		i := (outside - area.uid.Outside) / size
		uid := IDRange{0, area.uid.Outside + i*size, size}
		gid := IDRange{0, area.gid.Outside + i*size, size}
		path, err := readBundleRecord(dir, name)
		if err != nil || outside < area.uid.Outside || i >= n || uid.Outside != outside || !bundleHolds(path, uid, gid) {
			unix.Unlinkat(dir, name, 0)
			continue
		}
		if kept[outside] == "" {
			kept[outside] = path
		}
	}
	return kept
}

// readBundleRecord reads the path a record in dir names.
func readBundleRecord(dir int, name string) (string, error) {
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	buf := make([]byte, unix.PathMax+1)
	n, err := unix.Read(fd, buf)
	if err != nil {
		return "", err
	}
	path := strings.TrimSuffix(string(buf[:max(n, 0)]), "\n")
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("%s/%s: not a path", idLockDir, name)
	}
	return path, nil
}

// bundleHolds says whether the bundle at path is still there with the
// block's IDs: its directory's group is the block's (0710 root:the box's
// root group), or rootfs/ is the block's. lstat(2): a symlink put at the
// name is not followed.
func bundleHolds(path string, uid, gid IDRange) bool {
	in := func(id uint32, r IDRange) bool {
		return int64(id) >= int64(r.Outside) && int64(id) < int64(r.Outside)+int64(r.Count)
	}
	var st unix.Stat_t
	if unix.Lstat(path, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return false
	}
	if in(st.Gid, gid) {
		return true
	}
	return unix.Lstat(filepath.Join(path, "rootfs"), &st) == nil && (in(st.Uid, uid) || in(st.Gid, gid))
}
