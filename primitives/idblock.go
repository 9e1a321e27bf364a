package primitives

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// As root, each box with a user namespace of its own maps its root to a
// block of idBlock host IDs that no other live box maps, as podman's
// --userns=auto does: kill(2) and file modes see host uids, so two boxes
// sharing a range could signal each other's processes and executors.
//
// The blocks are cut from root's first range in /etc/subuid and
// /etc/subgid, or, without one, from stepbox's default area (the 16384
// blocks from uid and gid 1000000000, below 2^31). A block is free when
// no live process's uid_map or gid_map maps any of it (a box whose
// session died is still seen), no bundle exported from one of its boxes
// is still there (idblock_bundle.go) and no other root session has
// claimed it.
// The block is in the box's ledger (ResIDs) for `rm`, `exit` and the
// sweep.
//
// The claim is an flock(2) on a file named after the block in idLockDir,
// a directory only root may write, held by the session while the box
// lives: the kernel drops the lock however the session ends, and no
// other user can take or fake it. It was an abstract unix socket name
// once, which any local user can bind too (ut29 F4): binding all 16384
// names denied root every user-namespace box. Asking the kernel who holds
// a name (sock_diag's UDIAG_SHOW_UID) would tell a squatter from a
// session, but leave root no name of its own for a squatted block that
// other root sessions would see; a file only root can create has no such
// gap. The directory is a fixed path, not under the state dir, because
// sessions with different state dirs share the host's IDs, and not in
// /run/stepbox, root's default state dir, which a session with a state
// dir of its own must leave alone. It is made when a block is claimed
// and removed with the last claim, so it changes nothing that outlives
// the sessions (a session that crashed leaves its unlocked file behind,
// which the next release in the directory, or the sweep of its ledger,
// removes). It is seen by the sessions of one mount namespace, as the
// socket names were by those of one network namespace.
const idLockDir = "/run/stepbox-ids"

// idBlock is the number of IDs each box maps, 0 to 65535 inside.
const idBlock = 65536

// DefaultSubordinate is the area the blocks come from when stepbox runs as
// root and /etc/subuid (or /etc/subgid) names none for root: 16384 blocks
// of 65536 IDs from 1000000000, far above any account's and below 2^31,
// so that "root inside" is nobody on the host.
var DefaultSubordinate = IDRange{Inside: 0, Outside: 1000000000, Count: 16384 * idBlock}

// idArea is where a root session's blocks come from, and its name.
type idArea struct {
	uid, gid IDRange
	from     string
}

// blocks is how many blocks the area holds, and each one's size.
func (a idArea) blocks() (n, size int) {
	size = min(idBlock, a.uid.Count, a.gid.Count)
	return min(a.uid.Count, a.gid.Count) / size, size
}

// rootIDArea reads root's ranges in /etc/subuid and /etc/subgid, or gives
// the default area.
func rootIDArea() (idArea, error) {
	name := "root"
	if u, err := user.LookupId("0"); err == nil {
		name = u.Username
	}
	uid, okU, err := subordinateRange("/etc/subuid", name, 0)
	if err != nil {
		return idArea{}, err
	}
	gid, okG, err := subordinateRange("/etc/subgid", name, 0)
	if err != nil {
		return idArea{}, err
	}
	if !okU || !okG {
		d := DefaultSubordinate
		return idArea{d, d, fmt.Sprintf("stepbox's default area, %d blocks from %d (no line for root in /etc/subuid or /etc/subgid)", d.Count/idBlock, d.Outside)}, nil
	}
	return idArea{uid, gid, "root's ranges in /etc/subuid and /etc/subgid"}, nil
}

// idBlockClaim is a box's block: its uid and gid maps and the locked file
// that claims it.
type idBlockClaim struct {
	uid, gid IDRange
	from     string
	fd       int
}

// lockName is the name, in idLockDir, of the file that claims the block
// whose uids start at outside.
func lockName(outside int) string { return strconv.Itoa(outside) }

// release gives the block back: the box's processes are gone. The file
// goes while it is still locked, so a session that opened it meanwhile
// finds, once it has the lock, that it is no longer the block's file
// (lockIDFile), and the directory goes with the last claim.
func (c *idBlockClaim) release() {
	if c == nil || c.fd < 0 {
		return
	}
	unix.Unlink(filepath.Join(idLockDir, lockName(c.uid.Outside)))
	unix.Close(c.fd)
	c.fd = -1
	pruneIDLocks()
}

// openIDLockDir opens idLockDir, made if missing, and checks that only
// root can have put anything in it: a claim another user could make or
// remove would be no claim. /run is root's and writable by no one else,
// so what is checked stays so.
func openIDLockDir() (int, error) {
	parent := filepath.Dir(idLockDir)
	var st unix.Stat_t
	if err := unix.Stat(parent, &st); err != nil {
		return -1, fmt.Errorf("stat %s for the claims on ID blocks: %w", parent, err)
	}
	if why := untrusted(st, 0, false); why != "" {
		return -1, fmt.Errorf("claims on ID blocks: %s %s; stepbox keeps them in %s, where only root may write", parent, why, idLockDir)
	}
	if err := unix.Mkdir(idLockDir, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, fmt.Errorf("mkdir %s for the claims on ID blocks: %w", idLockDir, err)
	}
	fd, err := unix.Open(idLockDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s for the claims on ID blocks: %w", idLockDir, err)
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("fstat %s: %w", idLockDir, err)
	}
	if why := untrusted(st, 0, true); why != "" {
		unix.Close(fd)
		return -1, fmt.Errorf("claims on ID blocks: %s %s; only root may make a claim there, so stepbox refuses it: remove it and run again", idLockDir, why)
	}
	return fd, nil
}

// errIDLockGone says that the file or directory opened to claim a block
// was removed before it was locked (by the release of its last holder):
// the claim is tried again.
var errIDLockGone = errors.New("the claim's file was removed meanwhile")

// lockIDFile locks the file name in directory dir, made if missing, and
// returns it locked, with the PID of the session now holding it written
// in it. Held by another session, it returns fd -1 and that session's
// PID (0 if it has not written it yet).
func lockIDFile(dir int, name string) (fd, holder int, err error) {
	fd, err = unix.Openat(dir, name, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if errors.Is(err, unix.ENOENT) {
		return -1, 0, errIDLockGone // the directory was removed: it was empty
	}
	if err != nil {
		return -1, 0, fmt.Errorf("open %s/%s to claim an ID block: %w", idLockDir, name, err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer unix.Close(fd)
		if errors.Is(err, unix.EWOULDBLOCK) {
			buf := make([]byte, 16)
			n, _ := unix.Pread(fd, buf, 0)
			holder, _ := strconv.Atoi(strings.TrimSpace(string(buf[:max(n, 0)])))
			return -1, holder, nil
		}
		return -1, 0, fmt.Errorf("flock %s/%s to claim an ID block: %w", idLockDir, name, err)
	}
	// The file is the block's only if it is still the one at the name:
	// its last holder removes it before it unlocks it.
	var mine, there unix.Stat_t
	if err := unix.Fstat(fd, &mine); err != nil {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("fstat %s/%s: %w", idLockDir, name, err)
	}
	if err := unix.Fstatat(dir, name, &there, unix.AT_SYMLINK_NOFOLLOW); err != nil || there.Ino != mine.Ino || there.Dev != mine.Dev {
		unix.Close(fd)
		return -1, 0, errIDLockGone
	}
	pid := strconv.Itoa(os.Getpid()) + "\n"
	if err := unix.Ftruncate(fd, 0); err == nil {
		unix.Pwrite(fd, []byte(pid), 0)
	}
	return fd, 0, nil
}

// lockIDBlock claims the block whose uids start at outside: the locked
// file, or fd -1 and the PID of the session that holds it.
func lockIDBlock(outside int) (fd, holder int, err error) {
	// A claim finds its file or directory removed only when a release
	// ran between its open and its lock: a few tries suffice.
	for range 8 {
		dir, err := openIDLockDir()
		if err != nil {
			return -1, 0, err
		}
		fd, holder, err = lockIDFile(dir, lockName(outside))
		unix.Close(dir)
		if err != nil && !errors.Is(err, errIDLockGone) {
			unix.Rmdir(idLockDir) // made for this claim, if no other holds it
		}
		if !errors.Is(err, errIDLockGone) {
			return fd, holder, err
		}
	}
	return -1, 0, fmt.Errorf("claim host uids from %d: %s/%s was removed each time it was locked; try again", outside, idLockDir, lockName(outside))
}

// pruneIDLocks removes the files in idLockDir that no session holds (a
// crashed session's), the way a holder removes its own, then the
// directory if that left it empty: one of another session's claims, or
// a claim made meanwhile, keeps it.
func pruneIDLocks() {
	dir, err := unix.Open(idLockDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	// A bundle's record stays while its bundle does (idblock_bundle.go).
	if area, err := rootIDArea(); err == nil {
		keptBlocks(dir, area)
	}
	f := os.NewFile(uintptr(dir), idLockDir)
	names, _ := f.Readdirnames(-1)
	for _, name := range names {
		if _, ok := isBundleRecord(name); ok {
			continue
		}
		if fd, _, err := lockIDFile(dir, name); err == nil && fd >= 0 {
			unix.Unlinkat(dir, name, 0)
			unix.Close(fd)
		}
	}
	f.Close()
	unix.Rmdir(idLockDir) // ENOTEMPTY while a session holds a claim, or a bundle's record is there
}

// claimIDBlock takes the first free block of the area for box name.
func claimIDBlock(name string) (*idBlockClaim, error) {
	area, err := rootIDArea()
	if err != nil {
		return nil, err
	}
	used, err := mappedIDs()
	if err != nil {
		return nil, err
	}
	dir, err := openIDLockDir()
	if err != nil {
		return nil, err
	}
	bundles := keptBlocks(dir, area) // idblock_bundle.go
	unix.Close(dir)
	n, size := area.blocks()
	var mapped []int
	var claimed, kept []string
	for i := range n {
		uid := IDRange{0, area.uid.Outside + i*size, size}
		gid := IDRange{0, area.gid.Outside + i*size, size}
		if pid := used.mapper(uid, gid); pid != 0 {
			mapped = append(mapped, pid)
			continue
		}
		if path, ok := bundles[uid.Outside]; ok {
			kept = append(kept, path)
			continue
		}
		fd, holder, err := lockIDBlock(uid.Outside)
		if err != nil {
			return nil, err
		}
		if fd < 0 {
			by := "a root session"
			switch {
			case holder == os.Getpid():
				by = "this session"
			case holder > 0:
				by = fmt.Sprintf("the session of PID %d", holder)
			}
			claimed = append(claimed, by)
			continue
		}
		return &idBlockClaim{uid: uid, gid: gid, from: area.from, fd: fd}, nil
	}
	unix.Rmdir(idLockDir) // made for this claim, if nothing else is in it
	var why []string
	if len(mapped) > 0 {
		by := fmt.Sprintf("the user namespace of PID %d", mapped[0])
		if owner, err := userNSOwner(mapped[0]); err == nil && owner >= 0 {
			by += fmt.Sprintf(", made by uid %d", owner)
		}
		why = append(why, fmt.Sprintf("%d mapped by live user namespaces (the first by %s)", len(mapped), by))
	}
	if len(claimed) > 0 {
		why = append(why, fmt.Sprintf("%d claimed for boxes by root sessions (the first by %s)", len(claimed), claimed[0]))
	}
	if len(kept) > 0 {
		why = append(why, fmt.Sprintf("%d kept for the bundles exported from their boxes, whose files are theirs (the first %q: remove it, and the block is free)", len(kept), kept[0]))
	}
	return nil, fmt.Errorf("box %s: no free block of %d IDs in %s: of its %d blocks, %s: `rm` a box with a user namespace of its own, or give root a larger range in /etc/subuid and /etc/subgid",
		name, size, area.from, n, strings.Join(why, " and "))
}

// idMaps are the host IDs the live user namespaces other than the host's
// map, read from each one's uid_map and gid_map, and for each range the
// PID of a process in the namespace that maps it.
type idMaps struct {
	uids, gids   []IDRange
	uidBy, gidBy []int
}

// mapper is the PID of a process whose user namespace maps any of uid or
// gid, or 0.
func (m idMaps) mapper(uid, gid IDRange) int {
	for i, u := range m.uids {
		if overlaps([]IDRange{u}, uid) {
			return m.uidBy[i]
		}
	}
	for i, g := range m.gids {
		if overlaps([]IDRange{g}, gid) {
			return m.gidBy[i]
		}
	}
	return 0
}

// mappedIDs reads the maps of every user namespace a live process is in,
// once per namespace. A zombie is not live: it keeps its credentials, so
// /proc/PID/uid_map still shows its namespace's map, but it runs nothing.
// Where PID 1 reaps no orphans (a container started without an init, as
// `make test-container` runs), the PID 1 of every removed --user box stays
// one, and its block would never be free again.
func mappedIDs() (idMaps, error) {
	var out idMaps
	procs, err := procfs.AllProcs()
	if err != nil {
		return out, fmt.Errorf("read /proc for the user namespaces in use: %w", err)
	}
	self, err := nsOf("self", "user")
	if err != nil {
		return out, fmt.Errorf("stat /proc/self/ns/user: %w", err)
	}
	seen := map[nsID]bool{self: true}
	for _, p := range procs {
		pid := strconv.Itoa(p.PID)
		id, err := nsOf(pid, "user")
		if err != nil || seen[id] {
			continue
		}
		// Checked before the namespace counts as seen: a live process in
		// it may come after the zombie. A thread group whose leader has
		// exited shows Z too while its other threads run: not skipped.
		if st, err := p.Stat(); err != nil || st.State == "Z" && st.NumThreads <= 1 {
			continue
		}
		seen[id] = true
		u, errU := readIDMap("/proc/" + pid + "/uid_map")
		g, errG := readIDMap("/proc/" + pid + "/gid_map")
		if errU != nil || errG != nil {
			continue // gone meanwhile
		}
		for _, m := range u {
			out.uids = append(out.uids, IDRange{int(m.ContainerID), int(m.HostID), int(m.Size)})
			out.uidBy = append(out.uidBy, p.PID)
		}
		for _, m := range g {
			out.gids = append(out.gids, IDRange{int(m.ContainerID), int(m.HostID), int(m.Size)})
			out.gidBy = append(out.gidBy, p.PID)
		}
	}
	return out, nil
}

// overlaps reports whether r's host IDs meet any of used's.
func overlaps(used []IDRange, r IDRange) bool {
	for _, u := range used {
		if u.Outside < r.Outside+r.Count && r.Outside < u.Outside+u.Count {
			return true
		}
	}
	return false
}

// boxIDs is the block box b maps its root to, claimed and written to its
// ledger the first time it is asked for. b.mu is held, or the box is not
// yet shared.
func (b *Box) boxIDs() (*idBlockClaim, error) {
	if b.ids != nil {
		return b.ids, nil
	}
	c, err := claimIDBlock(b.Name)
	if err != nil {
		return nil, err
	}
	if err := b.ledger.Add(Resource{Kind: ResIDs, UID: c.uid.Outside, GID: c.gid.Outside, Count: c.uid.Count,
		Note: "the host IDs the box's user namespaces map, from " + c.from}); err != nil {
		c.release()
		return nil, err
	}
	b.ids = c
	return c, nil
}

// ledgerIDs checks a ResIDs line of a ledger once the box's processes
// were ended: a line outside root's area, or not on a block's boundary,
// is refused; a block a live process still maps is named, not freed (a
// box of another session may have taken it since, so nothing is ended for
// it here: the box's own processes are found by its namespaces).
func ledgerIDs(r Resource, box string) (note string, err error) {
	area, err := rootIDArea()
	if err != nil {
		return "", err
	}
	_, size := area.blocks()
	uid := IDRange{0, r.UID, r.Count}
	gid := IDRange{0, r.GID, r.Count}
	inside := func(a, x IDRange) bool {
		return x.Count == size && x.Outside >= a.Outside && x.Outside+x.Count <= a.Outside+a.Count && (x.Outside-a.Outside)%size == 0
	}
	if !inside(area.uid, uid) || !inside(area.gid, gid) {
		return "", fmt.Errorf("ledger: refusing ID block uids %d gids %d ×%d: not a block of %s", r.UID, r.GID, r.Count, area.from)
	}
	used, err := mappedIDs()
	if err != nil {
		return "", err
	}
	if overlaps(used.uids, uid) || overlaps(used.gids, gid) {
		return fmt.Sprintf("box %s's host uids %d-%d are still mapped by a live user namespace: a process of the box that escaped every search, or a box that took the block after its processes had gone; `stepbox cleanup` looks again", box, uid.Outside, uid.Outside+uid.Count-1), nil
	}
	// The sweep after a crash: the dead session's claim, unlocked since
	// it died, goes with its file.
	pruneIDLocks()
	return "", nil
}
