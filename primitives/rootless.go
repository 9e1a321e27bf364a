package primitives

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"stepbox/primitives/cgroups"
	"stepbox/primitives/onefs"
	"stepbox/primitives/step"
)

// Rootless mode (issue 19): stepbox started by a normal user, with no
// root and no CAP_SYS_ADMIN in the host's user namespace. Every box is
// then made in a user namespace of its own (as `new NAME --user`), where
// its root holds the capabilities over the namespaces, mounts and
// hostname the box makes; what belongs to the host's namespaces (a
// bridge, nft rules, cgroups nobody delegated) stays
// out of reach, and the steps that need it are refused before they run
// (RefuseRootless), with why and what to do.

// Rootless says whether this process runs without root and without
// CAP_SYS_ADMIN: a user namespace of the host's where the kernel grants
// it nothing.
var Rootless = sync.OnceValue(func() bool {
	if os.Geteuid() == 0 {
		return false
	}
	p, err := procfs.Self()
	if err != nil {
		return true
	}
	st, err := p.NewStatus()
	return err != nil || st.CapEff&(1<<unix.CAP_SYS_ADMIN) == 0
})

// RootlessCgroups is what a rootless session may do with cgroups: OK when
// the user's systemd manager delegates a subtree (stepbox's scope goes
// under its app.slice, cgroups/scope.go), with the controllers it
// delegates; else why not and what to do.
type RootlessCgroups struct {
	OK          bool
	Found, Do   string
	Controllers []string
}

// rootlessCgroups reads the delegation once, as doctor does.
var rootlessCgroups = sync.OnceValue(func() RootlessCgroups {
	h := LiveDoctorHost()
	c := h.checkDelegation()
	r := RootlessCgroups{Found: c.Found, Do: c.Advice}
	svc := fmt.Sprintf("/sys/fs/cgroup/user.slice/user-%d.slice/user@%d.service/cgroup.controllers", h.UID, h.UID)
	ctrl, ok := h.read(svc)
	if !ok || !h.exists("/run/systemd/system") || !h.exists("/sys/fs/cgroup/cgroup.controllers") {
		return r
	}
	r.Controllers = strings.Fields(ctrl)
	// The scope is asked of the user manager over its bus: without one
	// (no dbus-user-session, or XDG_RUNTIME_DIR unset), nothing is delegated.
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") == "" && os.Getenv("XDG_RUNTIME_DIR") == "" {
		r.Found = "user@" + fmt.Sprint(h.UID) + ".service runs, but this process has no way to its bus (neither DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set)"
		r.Do = "start stepbox from your login session (systemd-run --user --pty stepbox reaches the bus), or install dbus-user-session and log in again"
		return r
	}
	r.OK = true
	r.Do = "to delegate the others too: " + delegateDropIn
	return r
})

// subordinateMap is how a rootless box maps a subordinate range: box
// root is the learner, IDs 1 to Count are their range from /etc/subuid
// and /etc/subgid, written by the setuid helpers newuidmap(1) and
// newgidmap(1), since an unprivileged process may map only itself
// (user_namespaces(7)). It is the map rootless podman writes.
type subordinateMap struct {
	uid, gid             IDRange // Outside, Count: the range
	newuidmap, newgidmap string
}

// lines are the uid_map or gid_map lines for id and the range r.
func (m subordinateMap) lines(id int, r IDRange) string {
	return fmt.Sprintf("0 %d 1\n1 %d %d", id, r.Outside, r.Count)
}

// rootlessSubordinate finds the learner's ranges and the helpers; ok is
// false when either is missing (a box then maps one ID), and why says
// which.
func rootlessSubordinate() (m subordinateMap, ok bool, why string) {
	uid := os.Geteuid()
	name := userName(uid)
	u, okU, err := subordinateRange("/etc/subuid", name, uid)
	if err != nil {
		return m, false, err.Error()
	}
	g, okG, err := subordinateRange("/etc/subgid", name, uid)
	if err != nil {
		return m, false, err.Error()
	}
	if !okU || !okG {
		return m, false, "/etc/subuid and /etc/subgid give no range to " + name
	}
	m = subordinateMap{uid: u, gid: g}
	// newuidmap is set-user-ID root: it gets CAP_SETUID and CAP_SETGID
	// only if this process's bounding set still holds them (capabilities(7)).
	if p, err := procfs.Self(); err == nil {
		if st, err := p.NewStatus(); err == nil && st.CapBnd&(1<<unix.CAP_SETUID|1<<unix.CAP_SETGID) != 1<<unix.CAP_SETUID|1<<unix.CAP_SETGID {
			return m, false, "this process's capability bounding set lacks CAP_SETUID or CAP_SETGID, which the set-user-ID newuidmap and newgidmap need"
		}
	}
	if m.newuidmap, err = exec.LookPath("newuidmap"); err != nil {
		return m, false, "newuidmap is not installed (Debian's and Ubuntu's package uidmap)"
	}
	if m.newgidmap, err = exec.LookPath("newgidmap"); err != nil {
		return m, false, "newgidmap is not installed (Debian's and Ubuntu's package uidmap)"
	}
	return m, true, ""
}

// RootlessIDs says how a rootless box's IDs map: a subordinate range
// through newuidmap when there is one, else one ID, the learner's own.
func RootlessIDs() string {
	if m, ok, _ := rootlessSubordinate(); ok {
		return fmt.Sprintf("your subordinate range, through newuidmap and newgidmap: uid 0 in a box is uid %d (you) outside, uids 1-%d are %d-%d (/etc/subuid), gids likewise from gid %d and %d (/etc/subgid)",
			os.Geteuid(), m.uid.Count, m.uid.Outside, m.uid.Outside+m.uid.Count-1, os.Getegid(), m.gid.Outside)
	}
	_, _, why := rootlessSubordinate()
	return fmt.Sprintf("a single mapping: uid 0 in a box is uid %d (you) outside, gid 0 is gid %d; no other ID exists inside (chown to another user fails) because %s", os.Geteuid(), os.Getegid(), why)
}

// subordinateCalls are the newuidmap and newgidmap runs that map the box
// process pid (a number, or "PID" in a plan), a rootless box cloned into
// its user namespace unmapped.
func subordinateCalls(m subordinateMap, pid string) []plannedCall {
	var calls []plannedCall
	for _, c := range []struct {
		tool string
		id   int
		r    IDRange
	}{{m.newuidmap, os.Geteuid(), m.uid}, {m.newgidmap, os.Getegid(), m.gid}} {
		args := []string{pid, "0", strconv.Itoa(c.id), "1", "1", strconv.Itoa(c.r.Outside), strconv.Itoa(c.r.Count)}
		calls = append(calls, plannedCall{
			call: filepath.Base(c.tool) + " " + strings.Join(args, " ") + "   # setuid helper: writes the map an unprivileged process may not",
			do: func() error {
				out, err := exec.Command(c.tool, args...).CombinedOutput()
				if err != nil {
					return fmt.Errorf("%s %s: %w: %s", c.tool, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
				}
				return nil
			}})
	}
	return calls
}

// mapSubordinate runs subordinateCalls on pid, recorded in st.
func mapSubordinate(st *step.Step, m subordinateMap, pid int) error {
	for _, c := range subordinateCalls(m, strconv.Itoa(pid)) {
		if err := st.Do(c.call, c.do); err != nil {
			return err
		}
	}
	return nil
}

// RootlessLines are what a rootless session says when it starts.
func RootlessLines() []string {
	lines := []string{
		"rootless (uid " + fmt.Sprint(os.Geteuid()) + ", no CAP_SYS_ADMIN): every `new` box gets a user namespace of its own, whose root holds the capabilities over what the box makes, and nothing over the host; `mount dev` binds the host's device nodes, since a user namespace may not make any; steps that change the host (a bridge, nft rules) are refused, with why",
		"ids: " + RootlessIDs(),
	}
	if c := rootlessCgroups(); c.OK {
		line := "cgroups: through your systemd user manager's delegation; delegated: " + strings.Join(c.Controllers, " ")
		if c.Do != "" {
			line += "; " + c.Do
		}
		lines = append(lines, line)
	} else {
		lines = append(lines, "cgroups: none rootless here ("+c.Found+"): the cgroup steps are refused")
	}
	return lines
}

// ErrNoCgroupRootless is why a box has no cgroup when, rootless, none can
// be made on this host: `cgroup new` is refused there, so pointing to it
// would send the learner into a refusal.
var ErrNoCgroupRootless = errors.New("cgroups are not available rootless on this host (no cgroup is delegated to you): `stepbox doctor` says what it needs")

// ErrNoCgroup is why box commands that read a cgroup find none: make one
// with `cgroup new`, or, rootless where none can be made, ErrNoCgroupRootless.
func ErrNoCgroup() error {
	if Rootless() && !rootlessCgroups().OK {
		return ErrNoCgroupRootless
	}
	return cgroups.ErrNoGroup
}

// RootlessRefusal is a step refused before it runs because rootless it
// cannot work: Why says what the kernel would refuse, Do what to do.
type RootlessRefusal struct {
	Step, Why, Do string
}

func (r *RootlessRefusal) Error() string {
	return fmt.Sprintf("%s: refused rootless: %s; do: %s", r.Step, r.Why, r.Do)
}

// sudoAdvice is what to do for a step only root can take: a learner in a
// lab room may have no sudo, and then only the machine's admin can help.
const sudoAdvice = "where you may use sudo, run stepbox with it (`sudo stepbox`, or `make run` and accept sudo) for this step; where you may not, ask the machine's admin to let you, and meanwhile `next` goes on to the next step"

// adminDo words advice that only the machine's admin can follow (a sudo
// command, a kernel command line) as a request to them, with what the
// learner can do meanwhile; advice the learner can follow stays as it is.
func adminDo(advice string) string {
	if !strings.Contains(advice, "sudo") {
		return advice + "; or " + sudoAdvice
	}
	return "ask the machine's admin, since the fix needs root (" + advice + "), or to let you run stepbox with sudo; meanwhile `next` goes on to the next step"
}

// hostNet is why the host side of the network cannot be built rootless.
const hostNet = "it changes the host's network namespace, which belongs to the host's user namespace: there a normal user holds no CAP_NET_ADMIN"

// rootlessRefused are the steps that cannot work rootless, by command
// path, and why: the one place that says so.
var rootlessRefused = map[string]string{
	"net bridge":  "a bridge is a link in the host's network namespace: " + hostNet,
	"net veth":    "the veth pair's host end goes into the host's network namespace: " + hostNet,
	"net addr":    "it addresses the box's end of a veth pair, which rootless cannot be made (its host end is in the host's network namespace)",
	"net route":   "its gateway is the bridge on the host, which rootless cannot be made",
	"net nat":     "masquerading is an nft rule in the host's network namespace: " + hostNet,
	"net publish": "a published port is an nft DNAT rule in the host's network namespace: " + hostNet,
	"net trace":   "it follows packets with nft trace rules in the host's network namespace: " + hostNet,
	"net":         netViewRefused,
	"net show":    netViewRefused,
}

// netViewRefused is why the network view cannot be drawn rootless: it reads
// the box's network namespace from inside it (setns), which needs
// CAP_SYS_ADMIN in the box's user namespace, and the session, a
// multi-threaded program outside it, may not join a user namespace.
const netViewRefused = "the network view reads the box's network namespace by joining it (setns(2)), which needs CAP_SYS_ADMIN in the user namespace that owns it, the box's; the session, a multi-threaded program outside it, cannot join a user namespace (only a single-threaded process may); `exec ip addr` and `exec ip route` show the box's side from inside"

// devicesRefused is why a device rule cannot be set rootless, delegation
// or not: v2's is an eBPF program, which only CAP_SYS_ADMIN (or CAP_BPF)
// in the host's user namespace may load and attach (bpf(2)); v1's
// devices controller is never delegated.
const devicesRefused = "device rules are an eBPF program attached to the box's cgroup (v2) or the v1 devices controller: loading one needs CAP_SYS_ADMIN or CAP_BPF in the host's user namespace, which no delegation gives"

// RefuseRootless returns a *RootlessRefusal when the command path (e.g.
// "net bridge", "cgroup limit") cannot work in a rootless session on box
// b (nil: none yet), nil otherwise and always as root.
func RefuseRootless(path string, b *Box) error {
	if !Rootless() {
		return nil
	}
	if why, ok := rootlessRefused[path]; ok {
		return &RootlessRefusal{Step: path, Why: why, Do: sudoAdvice}
	}
	if path == "mount proc" && b != nil && b.Has("pid") && (b.FS().Pivoted && !b.FS().ProcAtPivot || b.FS().Chrooted) {
		return &RootlessRefusal{Step: path,
			Why: "after pivot_root or chroot, a user namespace may mount a proc only where one is fully visible already (mount_too_revealing(), fs/namespace.c), and box " + b.Name + " has none: its PID namespace came after its root changed, so nothing mounted one",
			Do:  "build a new box with `unshare mnt pid` before `pivot_root`, which then mounts the box's /proc for it while the host's is still in sight"}
	}
	if path == "mount proc" && b != nil && !b.Has("pid") {
		do := "`unshare pid` in the box first (rootless, a /proc of the box's own is the one that can be mounted), or " + sudoAdvice
		if f := b.FS(); f.Pivoted || f.Chrooted {
			// After pivot_root, the kernel mounts a new proc in a user
			// namespace only where one is fully visible already
			// (mount_too_revealing()): the host's went with the old root.
			do = "build a new box with `unshare mnt pid` before `pivot_root` (which then mounts the box's /proc for it: after pivot_root, a user namespace may mount proc only where one is already visible), or " + sudoAdvice
		}
		return &RootlessRefusal{Step: path,
			Why: "a proc mount shows a PID namespace, and mounting one needs CAP_SYS_ADMIN in the user namespace that owns that PID namespace (proc(5)): box " + b.Name + " is still in the host's, which the host's user namespace owns",
			Do:  do}
	}
	if strings.HasPrefix(path, "cgroup devices ") && path != "cgroup devices show" {
		return &RootlessRefusal{Step: path, Why: devicesRefused, Do: sudoAdvice}
	}
	if strings.HasPrefix(path, "cgroup ") && path != "cgroup show" && path != "cgroup devices" {
		if c := rootlessCgroups(); !c.OK {
			do := sudoAdvice
			if c.Do != "" {
				do = adminDo(c.Do)
			}
			return &RootlessRefusal{Step: path, Why: "no cgroup is delegated to you: " + c.Found, Do: do}
		}
	}
	return nil
}

// RefuseRootlessLine is RefuseRootless for a line of stepbox commands,
// on no box in particular: the refusal of its command (the longest of its
// first three words that names one), or nil.
func RefuseRootlessLine(line string) *RootlessRefusal {
	f := strings.Fields(line)
	for n := min(len(f), 3); n > 0; n-- {
		r := (*RootlessRefusal)(nil)
		if errors.As(RefuseRootless(strings.Join(f[:n], " "), nil), &r) {
			return r
		}
	}
	return nil
}

// openOwnDirs gives the learner back every directory under path they own
// but may not open (mode 0700), and says whether it changed one: a
// rootless overlay's work/work is made by the kernel with mode 0 (the
// mounter's, overlayfs ovl_workdir_create), which root removes through
// CAP_DAC_OVERRIDE and a normal user cannot even list.
func openOwnDirs(path string) bool {
	changed := false
	filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil && d != nil && d.IsDir() && errors.Is(err, fs.ErrPermission) {
			if os.Chmod(p, 0o700) == nil {
				changed = true
			}
		}
		return nil
	})
	return changed
}

// removeAllRootless removes what a rootless session could not: the
// directories the kernel made with mode 0 (openOwnDirs), then, when boxes
// map a subordinate range, files a box gave to one of its IDs (`chown
// 1000` inside is 200999 outside, not the learner's to remove): as root of
// a user namespace with the same maps, whose CAP_DAC_OVERRIDE covers every
// mapped owner, as `podman unshare rm` does.
func removeAllRootless(path string) error {
	if openOwnDirs(path) {
		if err := onefs.RemoveAll(path); !errors.Is(err, os.ErrPermission) {
			return err
		}
	}
	m, ok, why := rootlessSubordinate()
	if !ok {
		return fmt.Errorf("remove %s: %w (%s)", path, os.ErrPermission, why)
	}
	exe, err := SelfExePath()
	if err != nil {
		return err
	}
	mine, theirs, err := socketpair()
	if err != nil {
		return err
	}
	defer mine.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		theirs.Close()
		return err
	}
	defer devnull.Close()
	cmd := exec.Command(exe, entryBoxMapped, entryRemove, path)
	cmd.Args[0] = "stepbox"
	cmd.ExtraFiles = []*os.File{devnull, theirs} // fd 4 is executor.c's MAP_FD
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER, Pdeathsig: syscall.SIGKILL}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Start()
	theirs.Close()
	if err != nil {
		return fmt.Errorf("remove %s in a mapped user namespace: %w", path, err)
	}
	if _, err = io.ReadFull(mine, make([]byte, 1)); err == nil {
		if err = mapSubordinate(&step.Step{}, m, cmd.Process.Pid); err == nil {
			_, err = mine.Write([]byte{1})
		}
	}
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return fmt.Errorf("remove %s in a mapped user namespace: %w", path, err)
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("remove %s in a mapped user namespace: %w: %s", path, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// removeTreeMain is stepbox __rmtree PATH, run by removeAllRootless.
func removeTreeMain(args []string) int {
	if len(args) != 1 || !filepath.IsAbs(args[0]) {
		fmt.Fprintln(os.Stderr, "stepbox __rmtree: give one absolute path")
		return 2
	}
	if err := onefs.RemoveAll(args[0]); err != nil {
		fmt.Fprintln(os.Stderr, "stepbox __rmtree:", err)
		return 1
	}
	return 0
}
