package primitives

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
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

// DefaultSubordinate is the range box root maps to when stepbox runs as
// root and /etc/subuid (or /etc/subgid) names none for root: 65536 IDs
// from 1000000000, far above any account's, so that "root inside" is
// nobody on the host.
var DefaultSubordinate = IDRange{Inside: 0, Outside: 1000000000, Count: 65536}

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

// userMaps are the uid and gid maps `unshare user` writes: as root, box
// root maps to root's subordinate range (or DefaultSubordinate), so root
// inside is nobody outside; as anyone else, to that user, the one ID an
// unprivileged writer may map. The string says where the range came from.
func userMaps() (uid, gid IDRange, from string, err error) {
	if os.Geteuid() != 0 {
		return IDRange{0, os.Geteuid(), 1}, IDRange{0, os.Getegid(), 1}, "your own uid and gid, the only IDs an unprivileged process may map", nil
	}
	name := "root"
	if u, err := user.LookupId("0"); err == nil {
		name = u.Username
	}
	uid, okU, err := subordinateRange("/etc/subuid", name, 0)
	if err != nil {
		return uid, gid, "", err
	}
	gid, okG, err := subordinateRange("/etc/subgid", name, 0)
	if err != nil {
		return uid, gid, "", err
	}
	from = "root's ranges in /etc/subuid and /etc/subgid"
	if !okU || !okG {
		uid, gid = DefaultSubordinate, DefaultSubordinate
		from = "stepbox's default range (no line for root in /etc/subuid or /etc/subgid)"
	}
	return uid, gid, from, nil
}

// hostRootNote is what a root session's `new --user` box is told: its
// root is the host's uid 0, which the kernel's uid checks (kill(2), file
// modes) do not tell apart from the host's root.
const hostRootNote = "as root, `new --user` maps the box's root onto yours, uid 0: kill(2) and file modes see the host's root, so it can signal the session and write root's files it reaches; `unshare user` maps it to an unprivileged range instead, at the cost of overlays from stepbox's state dirs"

// plannedCall is one call of a step: its strace form and what performs it.
type plannedCall struct {
	call string
	do   func() error
}

// userNSAfterExec says whether a `new --user` box process makes its user
// namespace after its execve (userBoxCalls) rather than being cloned
// into it: only when the session is root. Its memory then belongs to
// the session's user namespace, where the box has no capability, so,
// non-dumpable (executor.c), it cannot be ptraced or read from inside
// the box, as runc init cannot. An unprivileged session has no
// CAP_SYS_PTRACE there either, and would lose its own reads of the box
// process's /proc/PID/ns, root and environ (ptrace(2), "Ptrace access
// mode checking"): its box process is cloned into the new namespace,
// where the session holds every capability, and a box root with
// CAP_SYS_PTRACE can still reach it; what it says is checked all the
// same (verify.go), and its binary is the sealed copy.
func userNSAfterExec() bool { return os.Geteuid() == 0 }

// userBoxCalls are the calls that give a root session's `new --user` box
// process its user namespace after its execve, the session's uid and gid
// as the box's root, written from the parent user namespace. proc is
// /proc/PID of x.
func userBoxCalls(x *executor, proc string) []plannedCall {
	uid, gid := os.Getuid(), os.Getgid()
	write := func(file, text string) plannedCall {
		p := proc + "/" + file
		return plannedCall{fmt.Sprintf("write(%q, %q, %d)   # by the session, from the parent user namespace", p, text, len(text)),
			func() error { return os.WriteFile(p, []byte(text), 0) }}
	}
	// setgroups "deny" as an unprivileged `new --user` has it, so that
	// the box is the same whoever starts it (user_namespaces(7)).
	return []plannedCall{
		{"unshare(CLONE_NEWUSER)", func() error { return x.Unshare(unix.CLONE_NEWUSER) }},
		write("setgroups", "deny"), write("uid_map", fmt.Sprintf("0 %d 1", uid)), write("gid_map", fmt.Sprintf("0 %d 1", gid)),
	}
}

// mapUser gives the user namespace x just made its maps, written by the
// session from the parent user namespace, then makes the executor root
// inside: its credentials are still the host's, which the new namespace
// shows as nobody until it changes them (user_namespaces(7)). Changing
// credentials clears the parent-death signal (prctl(2)): it is set again.
// With plan, nothing is done: the calls are recorded as not run (explain).
func mapUser(x *executor, proc string, st *step.Step, plan bool) error {
	uid, gid, from, err := userMaps()
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
