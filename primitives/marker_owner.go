package primitives

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
	"stepbox/primitives/cgroups"
)

// Markers in a process's environment are a claim any local user can make
// (environ(7) is theirs to write). markedOwned checks the claim against
// what the kernel shows: a marked process is ended only when it started
// after its session did and it runs as the session's user, in a user
// namespace that user made, or in the session's cgroup. One check serves
// teardown, rm, cleanup and the sweep.

// markedOwned says whether process p, marked with session, is the
// session's by the kernel's account; if not, why not.
func markedOwned(p procfs.Proc, procStart uint64, session string) (bool, string) {
	pidS, _, _ := strings.Cut(session, "-")
	spid, err := strconv.Atoi(pidS)
	sstart := sessionStart(session)
	if err != nil || spid <= 0 || sstart == 0 {
		return false, "its session marker is not a stepbox session ID"
	}
	if procStart < sstart {
		return false, "it started before its session did"
	}
	if inSessionCgroup(p.PID, session) {
		return true, ""
	}
	st, err := p.NewStatus()
	if err != nil {
		return false, fmt.Sprintf("its status is unreadable: %v", err)
	}
	me := int64(os.Geteuid())
	owner, err := userNSOwner(p.PID)
	if err != nil {
		return false, err.Error()
	}
	if owner == me {
		return true, ""
	}
	if owner < 0 && int64(st.UIDs[0]) == me {
		return true, ""
	}
	if owner < 0 {
		return false, fmt.Sprintf("it runs as uid %d, not as the session's uid %d", st.UIDs[0], me)
	}
	return false, fmt.Sprintf("its user namespace was made by uid %d, not by the session's uid %d", owner, me)
}

// userNSOwner is the uid that made the outermost user namespace below
// this process's that process pid is in (ioctl_ns(2), NS_GET_PARENT,
// NS_GET_OWNER_UID); -1 when pid is in this process's user namespace.
func userNSOwner(pid int) (int64, error) {
	const nsGetParent, nsGetOwnerUID = 0xb702, 0xb704 // _IO(0xb7, 2), _IO(0xb7, 4)
	var self unix.Stat_t
	if err := unix.Stat("/proc/self/ns/user", &self); err != nil {
		return 0, fmt.Errorf("stat /proc/self/ns/user: %w", err)
	}
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/user", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open /proc/%d/ns/user: %w", pid, err)
	}
	defer func() { unix.Close(fd) }()
	for range 33 { // the kernel nests at most 32 user namespaces
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return 0, fmt.Errorf("fstat /proc/%d/ns/user: %w", pid, err)
		}
		if st.Ino == self.Ino && st.Dev == self.Dev {
			return -1, nil
		}
		parent, err := unix.IoctlRetInt(fd, nsGetParent)
		if err != nil {
			return 0, fmt.Errorf("ioctl(NS_GET_PARENT) on /proc/%d/ns/user: %w (a user namespace outside this one)", pid, err)
		}
		var pst unix.Stat_t
		if unix.Fstat(parent, &pst) == nil && pst.Ino == self.Ino && pst.Dev == self.Dev {
			unix.Close(parent)
			var uid uint32
			if err := ioctlPtr(fd, nsGetOwnerUID, &uid); err != nil {
				return 0, fmt.Errorf("ioctl(NS_GET_OWNER_UID) on /proc/%d/ns/user: %w", pid, err)
			}
			return int64(uid), nil
		}
		unix.Close(fd)
		fd = parent
	}
	return 0, fmt.Errorf("/proc/%d/ns/user: no way up to this user namespace", pid)
}

// ioctlPtr is ioctl(fd, req, ptr) for a uint32 result.
func ioctlPtr(fd int, req uint, v *uint32) error {
	got, err := unix.IoctlGetUint32(fd, req)
	if err != nil {
		return err
	}
	*v = got
	return nil
}

// inSessionCgroup says whether process pid is in a cgroup under session
// spid's parent cgroup (stepbox-SPID) that the session's user owns: a
// user with a delegated cgroup can name one stepbox-SPID too, but it is
// theirs, not the session's.
func inSessionCgroup(pid int, session string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return false
	}
	name := cgroups.ParentName(session)
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		at, _, ok := strings.Cut(parts[2], "/"+name+"/")
		if !ok && strings.HasSuffix(parts[2], "/"+name) {
			at, ok = strings.TrimSuffix(parts[2], "/"+name), true
		}
		if !ok {
			continue
		}
		rel := at + "/" + name
		// Where the hierarchy is mounted: cgroup2 at the root (pure v2) or
		// at unified (hybrid), a v1 one at its controllers' or its name.
		m := strings.TrimPrefix(parts[1], "name=")
		if parts[0] == "0" {
			m = "unified"
			var fs unix.Statfs_t
			if unix.Statfs(cgroups.DefaultRoot, &fs) == nil && fs.Type == unix.CGROUP2_SUPER_MAGIC {
				m = ""
			}
		}
		var st unix.Stat_t
		if unix.Stat(filepath.Join(cgroups.DefaultRoot, m, rel), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR && st.Uid == uint32(os.Geteuid()) {
			return true
		}
	}
	return false
}

// MarkerRefused is told, once per process, of a process that carries a
// session's markers but is not that session's: it is left alone.
var MarkerRefused = func(line string) { fmt.Fprintln(os.Stderr, "stepbox: "+line) }

var refused = struct {
	sync.Mutex
	seen map[pidStart]bool
}{seen: map[pidStart]bool{}}

// refuseMarked names a marked process left alone, once.
func refuseMarked(p pidStart, session, why string) {
	refused.Lock()
	seen := refused.seen[p]
	refused.seen[p] = true
	refused.Unlock()
	if seen {
		return
	}
	line := strings.Replace(processLine(p.pid, ""), "ended PID", "left PID", 1)
	MarkerRefused(fmt.Sprintf("%s alone: it carries session %s's marker, but %s", line, session, why))
}
