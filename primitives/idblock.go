package primitives

import (
	"errors"
	"fmt"
	"os/user"
	"strconv"

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
// session died is still seen) and no other session has claimed it: the
// claim is an abstract unix socket named after the block, bound by the
// session while the box lives (unix(7)). Binding a name is atomic and
// machine-wide (for the network namespace sessions run in), and the
// kernel frees it when the session ends however it ends, so two sessions
// never take one block, with no lock file to leave behind. The block is
// in the box's ledger (ResIDs) for `rm`, `exit` and the sweep.

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
		return idArea{DefaultSubordinate, DefaultSubordinate, "stepbox's default area, 16384 blocks from 1000000000 (no line for root in /etc/subuid or /etc/subgid)"}, nil
	}
	return idArea{uid, gid, "root's ranges in /etc/subuid and /etc/subgid"}, nil
}

// idBlockClaim is a box's block: its uid and gid maps and the socket that
// claims it.
type idBlockClaim struct {
	uid, gid IDRange
	from     string
	fd       int
}

// claimName is the abstract socket name that claims the block whose uids
// start at outside.
func claimName(outside int) string { return "@stepbox-ids-" + strconv.Itoa(outside) }

// release gives the block back: the box's processes are gone.
func (c *idBlockClaim) release() {
	if c != nil && c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
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
	n, size := area.blocks()
	taken := 0
	for i := range n {
		uid := IDRange{0, area.uid.Outside + i*size, size}
		gid := IDRange{0, area.gid.Outside + i*size, size}
		if overlaps(used.uids, uid) || overlaps(used.gids, gid) {
			taken++
			continue
		}
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("socket(AF_UNIX) to claim an ID block: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrUnix{Name: claimName(uid.Outside)}); err != nil {
			unix.Close(fd)
			if errors.Is(err, unix.EADDRINUSE) {
				taken++
				continue
			}
			return nil, fmt.Errorf("bind(%q) to claim host uids %d-%d: %w", claimName(uid.Outside), uid.Outside, uid.Outside+size-1, err)
		}
		return &idBlockClaim{uid: uid, gid: gid, from: area.from, fd: fd}, nil
	}
	return nil, fmt.Errorf("box %s: every one of the %d blocks of %d IDs in %s is mapped by a live box or claimed by another session (%d taken): `rm` a box with a user namespace of its own, or give root a larger range in /etc/subuid and /etc/subgid",
		name, n, size, area.from, taken)
}

// idMaps are the host IDs the live user namespaces other than the host's
// map, read from each one's uid_map and gid_map.
type idMaps struct{ uids, gids []IDRange }

// mappedIDs reads the maps of every user namespace a live process is in,
// once per namespace.
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
		seen[id] = true
		u, errU := readIDMap("/proc/" + pid + "/uid_map")
		g, errG := readIDMap("/proc/" + pid + "/gid_map")
		if errU != nil || errG != nil {
			continue // gone meanwhile
		}
		for _, m := range u {
			out.uids = append(out.uids, IDRange{int(m.ContainerID), int(m.HostID), int(m.Size)})
		}
		for _, m := range g {
			out.gids = append(out.gids, IDRange{int(m.ContainerID), int(m.HostID), int(m.Size)})
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
	return "", nil
}
