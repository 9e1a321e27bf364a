package primitives

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"stepbox/primitives/rootfs"
)

// In a root session, a box whose user namespace came before its overlay
// mounts the overlay as its own root: host uid R of its ID block
// (idblock.go), with no capability over the host's files. overlayfs looks
// its layers and upper dir up with the mounter's credentials, so R must
// be let through to them, and own the upper and work dirs, which
// overlayfs writes with its credentials. The session prepares that: it
// makes the upper and work dirs itself and chowns them to R; the overlay
// dir above them (its upper tmpfs) stays root's, 0710 with R's group, so R can reach
// them but not rename or replace them (Docker keeps the dir above a
// layer's diff root's, 0710). Once R owned the overlay dir (ut31 F1): a
// box process that saw the host's tree (an exec before pivot_root, a
// chroot breakout) renamed upper and put a symlink to a host dir in its
// place, and the learner's `!touch $BOX_UPPER/x` wrote there as root.
// The merged dir stays root's too: mounting on it needs no ownership.
// The state dir's own directories on the way get o+x (search, not list:
// the names inside stay unreadable), as Docker's and podman's storage
// roots are 0711 when they remap users. A box without a user namespace
// gets none of it: its directories stay 0700. A directory
// above the state dir that does not let R through is left as it is, and
// the step fails naming it and what to do.

// hostIDs is the effective uid and gid on the host of process pid.
func hostIDs(pid int) (uid, gid int, err error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, 0, err
	}
	st, err := p.NewStatus()
	if err != nil {
		return 0, 0, err
	}
	return int(st.UIDs[1]), int(st.GIDs[1]), nil
}

// prepareOverlayFor lets the box's mapped root, the host uid and gid of
// its command process pid, mount an overlay of layers with its upper and
// work dirs in dir, and says what it did, for the step's notes. Nothing
// is done for a box whose root is the session's uid (no user namespace
// of its own yet, or rootless).
func (b *Box) prepareOverlayFor(pid int, layers []rootfs.Layer, dir string) (string, error) {
	uid, gid, err := hostIDs(pid)
	if err != nil {
		return "", fmt.Errorf("mount overlay: read the box's uid from /proc/%d/status: %w", pid, err)
	}
	if uid == os.Geteuid() {
		return "", nil
	}
	if err := os.Mkdir(dir, 0o710); err != nil && !os.IsExist(err) {
		return "", fmt.Errorf("mount overlay: mkdir %s: %w", dir, err)
	}
	// Search only, and only for the box's group: R reaches its upper and
	// work dirs, lists and changes nothing here, and the host's other
	// users stay out, as the 0700 dir kept them.
	if err := os.Lchown(dir, -1, gid); err != nil {
		return "", fmt.Errorf("mount overlay: chgrp %s to the box's root's group (host gid %d): %w", dir, gid, err)
	}
	if err := os.Chmod(dir, 0o710); err != nil {
		return "", fmt.Errorf("mount overlay: chmod %s 0710: %w", dir, err)
	}
	// The overlay's root takes the upper dir's mode: the top layer's, as
	// rootfs.MountOverlay gives it when the box makes the dir.
	top, err := os.Stat(layers[len(layers)-1].Dir)
	if err != nil {
		return "", fmt.Errorf("mount overlay: %w", err)
	}
	upper, work, merged := b.overlayDirs()
	for _, d := range []struct {
		path  string
		mode  os.FileMode
		boxes bool // R's
	}{{upper, top.Mode().Perm(), true}, {work, 0o700, true}, {merged, 0o755, false}} {
		if err := os.Mkdir(d.path, d.mode); err != nil {
			return "", fmt.Errorf("mount overlay: mkdir %s: %w", d.path, err)
		}
		if err := os.Chmod(d.path, d.mode); err != nil { // past the umask
			return "", fmt.Errorf("mount overlay: chmod %s: %w", d.path, err)
		}
		if d.boxes {
			if err := os.Lchown(d.path, uid, gid); err != nil {
				return "", fmt.Errorf("mount overlay: chown %s to the box's root (host uid %d): %w", d.path, uid, err)
			}
		}
	}
	roots := b.session.Dirs.ownRoots()
	for _, target := range append([]string{dir}, layerDirs(layers)...) {
		if err := letThrough(target, roots, uid, gid); err != nil {
			return "", fmt.Errorf("mount overlay: box %s's root is host uid %d (its user namespace came before the overlay, and overlayfs reads the layers with the rights of whoever mounts it): %w", b.Name, uid, err)
		}
	}
	return fmt.Sprintf("the box's user namespace came first, so its root, host uid %d, mounts the overlay: stepbox made the upper and work dirs in %s and gave them to it (chown), keeping the dir above them its own (0710, the box's group: the box reaches them, and cannot swap them for a link to a host dir), and let it search stepbox's state dirs on the way (o+x, names stay unlisted). "+
		"The layers' files are host root's, whom its user namespace does not map: inside they show as nobody (65534), and its root may read and run them but not change them; what it makes is its own", uid, dir), nil
}

func layerDirs(layers []rootfs.Layer) []string {
	var out []string
	for _, l := range layers {
		out = append(out, l.Dir)
	}
	return out
}

// ownRoots are the directories stepbox's state lives in, which it may
// open to a box's root: the state dir holding both, or each.
func (d Dirs) ownRoots() []string {
	if st := d.State(); st != d.Run {
		return []string{filepath.Clean(st)}
	}
	return []string{filepath.Clean(d.Run), filepath.Clean(d.Lib)}
}

// letThrough makes every directory from "/" down to target searchable by
// uid and gid: those at or under one of roots by o+x, others only checked.
func letThrough(target string, roots []string, uid, gid int) error {
	target = filepath.Clean(target)
	parts := strings.Split(strings.TrimPrefix(target, "/"), "/")
	p := "/"
	for i := 0; i <= len(parts); i++ {
		if i > 0 {
			p = filepath.Join(p, parts[i-1])
		}
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		if searchable(st, uid, gid) {
			continue
		}
		if !under(p, roots) {
			return fmt.Errorf("%s (mode %04o, owner %d), outside stepbox's state dir, does not let it through to %s: `chmod o+x %s`, or mount the overlay before `unshare user`, in a new box: then the session's rights build it",
				p, st.Mode&0o7777, st.Uid, target, p)
		}
		if err := os.Chmod(p, os.FileMode(st.Mode&0o777|0o011)); err != nil {
			return fmt.Errorf("chmod o+x %s: %w", p, err)
		}
	}
	return nil
}

// searchable says whether a directory with stat st lets uid or gid
// search it by its mode bits.
func searchable(st unix.Stat_t, uid, gid int) bool {
	switch {
	case int(st.Uid) == uid:
		return st.Mode&0o100 != 0
	case int(st.Gid) == gid:
		return st.Mode&0o010 != 0
	}
	return st.Mode&0o001 != 0
}

func under(p string, roots []string) bool {
	for _, r := range roots {
		if p == r || strings.HasPrefix(p, r+"/") {
			return true
		}
	}
	return false
}
