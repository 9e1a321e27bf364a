package primitives

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"stepbox/primitives/step"
)

// IDRange is one line of a uid_map or gid_map: Count IDs from Inside in
// the box are Outside… on the host (user_namespaces(7)).
type IDRange struct {
	Inside, Outside, Count int
}

func (r IDRange) String() string { return fmt.Sprintf("%d %d %d", r.Inside, r.Outside, r.Count) }

// subordinateRange reads the first range /etc/subuid or /etc/subgid
// (subuid(5)) grants to the user named name or numbered id.
func subordinateRange(file, name string, id int) (IDRange, bool, error) {
	f, err := os.Open(file)
	if errors.Is(err, fs.ErrNotExist) {
		return IDRange{}, false, nil
	}
	if err != nil {
		return IDRange{}, false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(fields) != 3 || (fields[0] != name && fields[0] != strconv.Itoa(id)) {
			continue
		}
		start, err1 := strconv.Atoi(fields[1])
		count, err2 := strconv.Atoi(fields[2])
		if err1 != nil || err2 != nil || start <= 0 || count <= 0 {
			return IDRange{}, false, fmt.Errorf("%s: bad line %q: want NAME:START:COUNT", file, sc.Text())
		}
		return IDRange{Inside: 0, Outside: start, Count: count}, true, nil
	}
	return IDRange{}, false, sc.Err()
}

// userMaps are the uid and gid maps of box b's user namespaces: as root,
// the box's own block of host IDs (boxIDs), so root inside is nobody
// outside and no other box shares its uids; as anyone else, that user,
// the one ID an unprivileged writer may map. The string says where the
// range came from. With plan (explain), a block is only looked for: the
// first free one, which the step would claim. b is nil in the plan of
// `new --user`.
func (b *Box) userMaps(plan bool) (uid, gid IDRange, from string, err error) {
	if os.Geteuid() != 0 {
		return IDRange{0, os.Geteuid(), 1}, IDRange{0, os.Getegid(), 1}, "your own uid and gid, the only IDs an unprivileged process may map", nil
	}
	if b != nil && b.ids != nil {
		return b.ids.uid, b.ids.gid, b.ids.from, nil
	}
	if plan || b == nil {
		return peekIDBlock()
	}
	c, err := b.boxIDs()
	if err != nil {
		return uid, gid, "", err
	}
	return c.uid, c.gid, c.from, nil
}

// peekIDBlock is the block a box would be given now, left unclaimed.
func peekIDBlock() (uid, gid IDRange, from string, err error) {
	c, err := claimIDBlock("(planned)")
	if err != nil {
		return uid, gid, "", err
	}
	c.release()
	return c.uid, c.gid, c.from, nil
}

// plannedCall is one call of a step: its strace form and what performs it.
type plannedCall struct {
	call string
	do   func() error
}

// userNSAfterExec says whether a `new --user` box process makes its user
// namespace after its execve (unshare(CLONE_NEWUSER), then mapUser)
// rather than being cloned into it: only when the session is root. Its
// memory then belongs to the session's user namespace, where the box has
// no capability, so, non-dumpable (executor.c), it cannot be ptraced or
// read from inside the box, as runc init cannot. An unprivileged session
// has no CAP_SYS_PTRACE there either, and would lose its own reads of the
// box process's /proc/PID/ns, root and environ (ptrace(2), "Ptrace access
// mode checking"): its box process is cloned into the new namespace,
// where the session holds every capability, and a box root with
// CAP_SYS_PTRACE can still reach it; what it says is checked all the
// same (verify.go), and its binary is the sealed copy.
func userNSAfterExec() bool { return os.Geteuid() == 0 }

// mapUser gives the user namespace x just made its maps (userMaps),
// written by the session from the parent user namespace, then makes the
// executor root inside: its credentials are still the host's, which the
// new namespace shows as nobody until it changes them
// (user_namespaces(7)). As root, setgroups(0, NULL) also drops the
// host's supplementary groups (gid 0 among them). Changing credentials
// clears the parent-death signal (prctl(2)): it is set again. With plan,
// nothing is done: the calls are recorded as not run (explain).
func mapUser(b *Box, x *executor, proc string, st *step.Step, plan bool) error {
	uid, gid, from, err := b.userMaps(plan)
	if err != nil {
		return fmt.Errorf("unshare user: %w", err)
	}
	write := func(file, text string) plannedCall {
		p := proc + "/" + file
		return plannedCall{fmt.Sprintf("write(%q, %q, %d)   # by the session, from the parent user namespace", p, text, len(text)),
			func() error { return os.WriteFile(p, []byte(text), 0) }}
	}
	calls := []plannedCall{write("uid_map", uid.String())}
	if os.Geteuid() != 0 {
		// An unprivileged writer of gid_map must deny setgroups(2) first
		// (user_namespaces(7), "Interaction with system calls changing process GIDs").
		calls = append(calls, write("setgroups", "deny"))
	}
	calls = append(calls, write("gid_map", gid.String()),
		plannedCall{"setresgid(0, 0, 0)", func() error { return x.Setresgid(0) }})
	if os.Geteuid() == 0 {
		calls = append(calls, plannedCall{"setgroups(0, NULL)", func() error { return x.Setgroups() }})
	}
	calls = append(calls,
		plannedCall{"setresuid(0, 0, 0)", func() error { return x.Setresuid(0) }},
		plannedCall{"prctl(PR_SET_PDEATHSIG, SIGKILL)", func() error { return x.Prctl(unix.PR_SET_PDEATHSIG, int(unix.SIGKILL)) }})
	for _, c := range calls {
		if plan {
			st.Plan(c.call)
		} else if err := st.Do(c.call, c.do); err != nil {
			return err
		}
	}
	st.Shell = append(st.Shell, fmt.Sprintf("unshare --user --map-users=%d:%d:%d --map-groups=%d:%d:%d --setuid 0 --setgid 0 sh",
		uid.Outside, uid.Inside, uid.Count, gid.Outside, gid.Inside, gid.Count))
	st.Man = append(st.Man, "user_namespaces(7)")
	st.Notes = append(st.Notes,
		fmt.Sprintf("uid 0 in the box is uid %d on the host (uid_map %q), gid 0 is gid %d: %s", uid.Outside, uid.String(), gid.Outside, from),
		"the new user namespace owns only the namespaces made after it: those made before stay the host's, and the box's root has no capability over them (`ns` shows the owners)")
	return nil
}

// nsOwner is the inode of the user namespace that owns the namespace
// file p (ioctl_ns(2), NS_GET_USERNS; for a user namespace, its parent,
// NS_GET_PARENT). 0 when the kernel will not say.
func nsOwner(p string, user bool) uint32 {
	const nsGetUserns, nsGetParent = 0xb701, 0xb702 // _IO(0xb7, 1), _IO(0xb7, 2)
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0
	}
	defer unix.Close(fd)
	req := uint(nsGetUserns)
	if user {
		req = nsGetParent
	}
	owner, err := unix.IoctlRetInt(fd, req)
	if err != nil {
		return 0
	}
	defer unix.Close(owner)
	var st unix.Stat_t
	if unix.Fstat(owner, &st) != nil {
		return 0
	}
	return uint32(st.Ino)
}
